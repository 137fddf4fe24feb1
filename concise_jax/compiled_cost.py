"""What the compiler says: memory_analysis() and HLO collective counts of the update and sampler.

`cost_model` predicts bytes by arithmetic; this module lowers and compiles the real jitted
functions on a mesh (abstract inputs: nothing runs) and reads back

  * `compiled.memory_analysis()`: per-device argument, output, alias and temp bytes. Temp is
    everything XLA allocates besides arguments and outputs: the update's gradients, optimizer
    intermediates, activations and log-prob chunks; the sampler's KV cache, decode-loop state
    and, under FSDP, the all-gathered weights.
  * collectives in the optimised HLO, each weighted by how often it runs: once per call, times
    the trip count of every enclosing loop XLA knows (`known_trip_count`: layer scans,
    micro-batch scans), or "per token" inside a loop of unknown length (the decode loop).

    update = compiled_cost.compile_update(config, mesh, run)
    print(compiled_cost.memory_stats(update), compiled_cost.collective_counts(update.as_text()))
"""
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import cost_model, models, rollout, sharding, types
from concise_jax.models import transformer
from concise_jax.train import loop, rollout_step, step
from concise_jax.train import trainer as trainer_lib
from concise_jax.train.state import init_train_state

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*->.*\{\s*$")
_CALLEE = re.compile(r"\b(?:condition|body|calls|to_apply|true_computation|false_computation)"
                     r"=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_OP = re.compile(r"=\s*(.*?)\s(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_ARRAY = re.compile(r"\b(pred|[subf]\d+|bf16|f8\w*)\[([\d,]*)\]")
_BITS = re.compile(r"(\d+)$")


def _type_bytes(type_str: str) -> int:
  """Bytes of an HLO result type (arrays or a tuple of arrays)."""
  total = 0
  for dtype, dims in _ARRAY.findall(type_str):
    bits = 8 if dtype == "pred" else 16 if dtype == "bf16" else int(_BITS.search(dtype).group(1))
    total += int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64)) * bits // 8
  return total


def _computations(hlo: str) -> tuple[dict[str, list[str]], str]:
  """Computation name → its instruction lines, and the ENTRY computation's name."""
  comps, entry, current = {}, None, None
  for line in hlo.splitlines():
    m = _HEADER.match(line)
    if m:
      current = m.group(1)
      comps[current] = []
      if line.startswith("ENTRY"):
        entry = current
    elif line.startswith("}"):
      current = None
    elif current is not None:
      comps[current].append(line)
  return comps, entry


def _callees(line: str) -> list[str]:
  names = _CALLEE.findall(line)
  for group in _BRANCHES.findall(line):
    names += [n.strip().lstrip("%") for n in group.split(",") if n.strip()]
  return names


def collective_counts(hlo: str) -> dict[str, dict[str, int]]:
  """Per collective kind: static op count, executions and bytes per call and per unknown-length
  loop iteration (per decode token).

  Returns {kind: {"ops", "per_call", "per_token", "bytes_per_call", "bytes_per_token"}}; a
  conditional's branches all count (an upper bound).
  """
  comps, entry = _computations(hlo)
  out = {k: collections.Counter() for k in COLLECTIVES}
  # (computation, multiplier, inside an unknown-trip-count loop); depth-first from ENTRY.
  stack = [(entry, 1, False)]
  while stack:
    name, mult, unbounded = stack.pop()
    for line in comps.get(name, ()):
      op = _OP.search(line)
      if op and "-done(" not in line:
        c = out[op.group(2)]
        c["ops"] += 1
        c["per_token" if unbounded else "per_call"] += mult
        c["bytes_per_token" if unbounded else "bytes_per_call"] += mult * _type_bytes(op.group(1))
      callees = _callees(line)
      if not callees:
        continue
      if " while(" in line:
        trip = _TRIP.search(line)
        # An unknown trip count (decode loop) restarts the count at 1 and flags "per token".
        inner = (mult * int(trip.group(1)), unbounded) if trip else (1, True)
        stack += [(c, *inner) for c in callees]
      else:
        stack += [(c, mult, unbounded) for c in callees]
  return {k: dict(v) for k, v in out.items()}


def memory_stats(compiled) -> dict[str, int]:
  """Per-device bytes from `compiled.memory_analysis()`."""
  m = compiled.memory_analysis()
  return {"argument": m.argument_size_in_bytes, "output": m.output_size_in_bytes,
          "alias": m.alias_size_in_bytes, "temp": m.temp_size_in_bytes}


# --------------------------------------------------------------------------- compiling


def _sds(shape, dtype) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(shape, dtype)


def abstract_update_batch(run: cost_model.RunShape) -> step.UpdateBatch:
  """The UpdateBatch `rollout_step.rollout_batch` + scoring produce, as shapes only."""
  b, t, s = run.rows, run.max_new_tokens, run.prompt_len
  f32, i32 = jnp.float32, jnp.int32
  rollout_b = types.Rollout(
      tokens_bt=_sds((b, t), i32), mask_bt=_sds((b, t), f32), length_b=_sds((b,), i32),
      correct_b=_sds((b,), bool), format_ok_b=_sds((b,), bool), truncated_b=_sds((b,), bool),
      prompt_index_b=_sds((b,), i32), old_logp_bt=_sds((b, t), f32),
      prompt_tokens_bs=_sds((b, s), i32), prompt_mask_bs=_sds((b, s), f32))
  reward_out = types.RewardOutput(rewards_b=_sds((b,), f32), loss_mask_bt=_sds((b, t), f32),
                                  group_flags_b=_sds((b,), f32))
  return step.UpdateBatch(rollout=rollout_b, reward_out=reward_out, keep_b=_sds((b,), bool))


def run_shape_of(config, model_cfg) -> cost_model.RunShape:
  """The `cost_model.RunShape` of a run config (model dtypes from `model_cfg`)."""
  return cost_model.RunShape(
      prompts=config.rollout.prompts_per_step, samples=config.rollout.group_size,
      prompt_len=config.rollout.max_prompt_tokens, max_new_tokens=config.rollout.max_new_tokens,
      micro_batch=config.optim.micro_batch, lora_rank=config.model.lora.rank,
      lora_targets=tuple(t.strip() for t in config.model.lora.targets.split(",")),
      kl=config.kl.coef != 0.0, param_dtype=model_cfg.param_dtype,
      compute_dtype=model_cfg.dtype, remat=model_cfg.remat_policy != "none",
      logp_chunk=config.train.logp_chunk, reward_table=config.data.num_prompts)


def compile_update(config, mesh: jax.sharding.Mesh):
  """The run's jitted update (`trainer_lib.build_functions`), lowered on abstract state and batch."""
  model_cfg, params, _ = trainer_lib.load_model(config)
  trainable, frozen, axes = trainer_lib.split_trainable(config, model_cfg, params)
  fns = trainer_lib.build_functions(config, model_cfg, trainable, frozen, axes, mesh)
  state = jax.eval_shape(lambda p: init_train_state(
      p, fns.tx), trainable)
  frozen = jax.eval_shape(lambda f: f, frozen)
  batch = abstract_update_batch(run_shape_of(config, model_cfg))
  return fns.update.lower(state, frozen, batch).compile()


def _sampler_inputs(config, mesh, reshard: bool = False):
  model_cfg, params, tokenizer = trainer_lib.load_model(config)
  rules = tuple(config.mesh.rules)
  if reshard:   # the layout `rollout.reshard_params` decodes with
    rules = sharding.rollout_rules(rules)
  params = jax.eval_shape(lambda p: p, params)
  param_sh = sharding.tree_shardings(mesh, models.param_axes(model_cfg), rules, params)
  prompts = _sds((config.rollout.prompts_per_step, config.rollout.max_prompt_tokens), jnp.int32)
  return model_cfg, params, tokenizer, param_sh, sharding.batch_sharding(mesh, rules), prompts


def compile_sampler(config, mesh: jax.sharding.Mesh, reshard: bool = False):
  """`rollout.sample` as the trainer calls it: params in their training layout (or with fsdp
  splits gathered, `reshard`), prompt rows over data × fsdp, decode rows pinned there."""
  model_cfg, params, tokenizer, param_sh, row_sh, prompts = _sampler_inputs(config, mesh,
                                                                            reshard)
  sp = rollout_step.sampling_params(config, tokenizer)
  g = config.rollout.group_size
  layout = sharding.Layout.of(mesh, config.mesh.rules)
  fn = jax.jit(lambda p, t, m, k: rollout.sample(model_cfg, p, t, m, k, sp, num_samples=g,
                                                 layout=layout),
               in_shardings=(param_sh, row_sh, row_sh, sharding.replicated(mesh)))
  return fn.lower(params, prompts, prompts, _sds((2,), jnp.uint32)).compile()


def compile_prefill(config, mesh: jax.sharding.Mesh):
  """The sampler's first half: prefill and repeat to P·G rows; its output is the KV cache as
  the compiler lays it out (out_shardings left to propagation)."""
  model_cfg, params, _, param_sh, row_sh, prompts = _sampler_inputs(config, mesh)
  g, q = config.rollout.group_size, config.rollout.max_prompt_tokens + config.rollout.max_new_tokens

  def prefill(p, t, m):
    _, cache = transformer.prefill(model_cfg, p, t, m, q)
    cache = cache.map_batch(lambda x, axis: jnp.repeat(x, g, axis=axis))
    return cache.k_bksh, cache.v_bksh

  fn = jax.jit(prefill, in_shardings=(param_sh, row_sh, row_sh))
  return fn.lower(params, prompts, prompts).compile()


# --------------------------------------------------------------------------- predicted vs compiled


def predicted_arguments(mem: dict, run: cost_model.RunShape, mesh: cost_model.MeshShape,
                        rules) -> dict[str, int]:
  """The arithmetic's counterpart of each compiled function's argument (or output) bytes."""
  prompts = 2 * run.prompts * run.prompt_len * 4 // cost_model.split_of(run.prompts, "batch",
                                                                         mesh, rules)
  return {
      "update_args": sum(mem[k] for k in ("params", "frozen_ref", "trainable", "optimizer",
                                          "batch", "reward_tables")),
      "sampler_args": mem["params"] + prompts,
      "prefill_out": mem["kv_cache"],
  }


def check_mesh(config, mesh_shape, *, collectives: bool = True) -> dict:
  """Compiles the update, sampler and prefill of `config` on `mesh_shape`; returns predicted
  bytes, `memory_analysis()` of each and (optionally) their collective counts."""
  config = config.copy_and_resolve_references()
  config.mesh.shape = tuple(mesh_shape)
  rules = tuple(config.mesh.rules)
  mesh = sharding.make_mesh(mesh_shape)
  model_cfg = trainer_lib.load_model(config)[0]
  run = run_shape_of(config, model_cfg)
  cm_mesh = cost_model.MeshShape(*mesh_shape)
  mem = cost_model.step_memory(model_cfg, cm_mesh, run, rules)
  out = {"mesh": tuple(mesh_shape), "predicted": mem,
         "predicted_args": predicted_arguments(mem, run, cm_mesh, rules)}
  for name, compile_fn in (("update", compile_update), ("sampler", compile_sampler),
                           ("prefill", compile_prefill)):
    compiled = compile_fn(config, mesh)
    out[name] = memory_stats(compiled)
    if collectives and name != "prefill":
      out[f"{name}_collectives"] = collective_counts(compiled.as_text())
  return out
