"""The host loop: rollout → reward → filter/refill → advantage + update → metrics → checkpoint.

    result = run(config, workdir)

Start-up (`trainer.make_trainer`): if `workdir/ckpt` has a checkpoint, resume from it (state,
component memory and data position, bit-exactly); otherwise start from the configured model. A non-finite loss,
gradient or update halts the run before anything is saved, so the last checkpoint stays the
last good one.

Randomness: the tiny model's init and LoRA's A use fold_in(key(seed), 0); the data order uses
`seed` (hashed by the pipeline); sampling uses fold_in(fold_in(key(seed), 2), step) and one more
fold_in per refill batch; the draft head's init fold_in(key(seed), 4) and its distillation
fold_in(fold_in(key(seed), 5), step) — all pure functions of (seed, step), hence resumable.

Speculative rollouts (`rollout.speculative.enabled`, `draft.online`): rollouts decode with the
lossless speculative sampler and the current EAGLE head, and after each policy update the head
takes one distillation step on that rollout from the updated policy (SpecVLM, arXiv 2509.11815).
"""
import dataclasses
import json
import os
import time

import jax
import numpy as np
from absl import logging

from concise_jax import components, distributed, filters, options, types
from concise_jax.draft import checkpoint as draft_checkpoint
from concise_jax.draft import online as online_draft
from concise_jax.eval import metrics as eval_metrics_lib
from concise_jax.eval import runner as eval_runner
from concise_jax.train import checkpoint, metrics as metrics_lib, rollout_step, step
from concise_jax.train import host_features
from concise_jax.train import preemption, run_files, workdir_lock
from concise_jax.train.state import TrainState
from concise_jax.train.trainer import Trainer, make_trainer


@dataclasses.dataclass
class RunResult:
  """What `run` returns: the last state and metrics, and whether a NaN guard stopped it.

  `eval_before` / `eval_after` are the held-out evaluations at step 0 and at the last step
  (empty when evaluation is off); `eval_before` is read back from the workdir after a resume.
  """
  step: int
  halted: bool
  metrics: dict
  state: TrainState
  eval_before: dict = dataclasses.field(default_factory=dict)
  eval_after: dict = dataclasses.field(default_factory=dict)
  preempted: str = ""               # the signal that stopped the run ("" = it was not)


# --------------------------------------------------------------------------- one step


def _sample_batch(r: Trainer, params: dict, examples: list, key: jax.Array, *, group_size: int,
                  sp, budget_p: np.ndarray | None = None,
                  steering=None, sample_fn=None) -> tuple[types.Rollout, int]:
  """(scored rollout, number of prompts cut to max_prompt_tokens)."""
  batch, _, stats = rollout_step.rollout_batch(
      r.model_cfg, params, r.tokenizer, examples, [r.index_of.get(e.id, 0) for e in examples],
      key, sp=sp, group_size=group_size, fmt=rollout_step.prompt_format(r.config), check=r.check,
      features=r.features, budget_p=budget_p,
      layout=r.layout, steering=steering, sample_fn=sample_fn)
  return batch, stats["prompts_cut"]


def _collect_rollouts(r: Trainer, state: TrainState, key: jax.Array):
  """Rollout batches until the group filter has kept a full update batch (DAPO refill).

  Returns (update batch, reward state after scoring, every generated rollout, reward metrics,
  refill stats).
  """
  c = r.config
  params = r.fns.model_params(state.params, r.frozen)
  sp = rollout_step.sampling_params(c, r.tokenizer)
  # Scoring runs on each host (same inputs, same results everywhere): the components' memory
  # comes off the mesh here and goes back in `train_step`.
  reward_state, generated, reward_metrics = distributed.fetch(state.reward_state), [], []
  steering = rollout_step.steering_from_config(c)   # ASC-steered training rollouts, or None
  stats = {"prompts_cut": 0, "budgets": []}
  sample_fn = _sample_fn(r, state, stats)

  def next_batch():
    nonlocal reward_state
    examples = next(r.iterator)
    budget_p = None
    if c.budget.name != "none":
      index_p = np.asarray([r.index_of.get(e.id, 0) for e in examples], np.int32)
      budget_p = np.asarray(r.fns.budget(reward_state, index_p))
      stats["budgets"].append(budget_p)
    batch, cut = _sample_batch(r, params, examples, jax.random.fold_in(key, len(generated)),
                               group_size=c.rollout.group_size, sp=sp, budget_p=budget_p,
                               steering=steering, sample_fn=sample_fn)
    stats["prompts_cut"] += cut
    reward_out, reward_state, metrics = r.fns.score(reward_state, batch)
    generated.append(batch)
    reward_metrics.append(metrics)
    return batch, jax.device_get(reward_out)

  (batch, reward_out), keep_b, fill_stats = filters.fill_groups(
      next_batch, lambda tree: r.fns.keep(*tree), group_size=c.rollout.group_size,
      groups_per_update=c.rollout.prompts_per_step, max_batches=c.rollout.max_refill_batches)
  update_batch = step.UpdateBatch(rollout=batch, reward_out=reward_out, keep_b=keep_b)
  return update_batch, reward_state, generated, reward_metrics, {**stats, **fill_stats}


def _sample_fn(r: Trainer, state: TrainState, stats: dict):
  """None (the plain sampler), or with speculation on, the speculative one with the current
  head (each batch's mean accepted length goes to stats["accepted"])."""
  if r.draft_spec is None:
    return None
  dp = online_draft.draft_params(r.draft_spec, state.draft)
  return online_draft.speculative_sample_fn(r.draft_spec, dp, stats.setdefault("accepted", []))


def _distill(r: Trainer, state: TrainState, placed: step.UpdateBatch,
             step_index: int) -> tuple[TrainState, dict]:
  """One draft-head update on the rollout just trained on, from the updated policy."""
  params = r.fns.model_params(state.params, r.frozen)
  key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(r.config.seed), 5), step_index)
  draft, metrics = r.distill(state.draft, params, placed.rollout, key)
  return state.replace(draft=draft), metrics


def _step_metrics(generated, update_batch, reward_metrics, stats) -> dict[str, float]:
  """Rollout metrics over every generated sample, reward metrics over the update batch."""
  cat = lambda name: np.concatenate([np.asarray(getattr(g, name)) for g in generated])
  out = metrics_lib.rollout_metrics(cat("correct_b"), cat("length_b"), cat("truncated_b"),
                                    cat("format_ok_b"))
  out.update(metrics_lib.reward_metrics(update_batch.reward_out.rewards_b, update_batch.keep_b))
  for key in reward_metrics[0]:
    out[f"reward/{key}"] = float(np.mean([float(m[key]) for m in reward_metrics]))
  out["filter/kept_frac"] = stats["groups_kept"] / max(stats["groups_seen"], 1)
  out["filter/rollout_batches"] = float(stats["num_batches"])
  out["filter/filled"] = float(stats["filled"])
  out["rollout/prompts_cut"] = float(stats["prompts_cut"])   # > 0: raise max_prompt_tokens
  if stats.get("accepted"):   # speculative rollouts: tokens per target forward per row
    out["draft/accept_len"] = float(np.mean(stats["accepted"]))
  if stats["budgets"]:
    out["rollout/budget_mean"] = float(np.mean(np.concatenate(stats["budgets"])))
  return out


def _refresh_band_targets(r: Trainer, state: TrainState, step_index: int) -> TrainState:
  """The reward's host monitors that are due (LASER-D/DE's band targets every monitor_freq
  steps, `host_features.MONITORS`) refresh its state from extra rollouts."""
  if not any(name in host_features.MONITORS and host_features.monitor_due(opts, step_index)
             for name, opts in components.needs(r.config).items()):
    return state
  params = r.fns.model_params(state.params, r.frozen)
  sp = rollout_step.sampling_params(r.config, r.tokenizer)
  sample = lambda exs, key, n: _sample_batch(r, params, exs, key, group_size=n, sp=sp)[0]
  states = distributed.fetch(state.reward_state)
  reward = host_features.refresh_monitored(r.config, states.reward, r.monitor_examples, sample,
                                           step_index)
  states = states.replace(reward=reward)
  return state.replace(reward_state=distributed.put(states, r.fns.state_sh.reward_state))


def train_step(r: Trainer, state: TrainState, step_index: int) -> tuple[TrainState, dict]:
  """One rollout + update; the returned metrics are host floats."""
  c = r.config
  t0 = time.perf_counter()
  state = _refresh_band_targets(r, state, step_index)
  update_batch, reward_state, generated, reward_metrics, stats = _collect_rollouts(
      r, state, jax.random.fold_in(r.sample_rng, step_index))
  t1 = time.perf_counter()
  state = state.replace(reward_state=distributed.put(reward_state, r.fns.state_sh.reward_state))
  host_batch = update_batch
  placed = distributed.put(update_batch, r.fns.batch_sh)
  draft = state.draft     # the update's compiled state has no draft; it comes back after
  state, update_metrics = r.fns.update(state.replace(draft=None), r.frozen, placed)
  state = state.replace(draft=draft)
  if r.draft_spec is not None:
    state, draft_metrics = _distill(r, state, placed, step_index)
    update_metrics = {**update_metrics, **draft_metrics}
  update_metrics = metrics_lib.to_floats(distributed.fetch(update_metrics))  # waits for it
  t2 = time.perf_counter()
  out = _step_metrics(generated, host_batch, reward_metrics, stats)
  out.update(update_metrics)
  rollout_tokens = sum(float(np.sum(g.length_b)) for g in generated)
  rb = host_batch.rollout
  update_tokens = c.train.ppo_epochs * float(np.sum(rb.prompt_mask_bs) + np.sum(rb.mask_bt))
  out.update({"perf/rollout_s": t1 - t0, "perf/update_s": t2 - t1,
              "perf/rollout_tok_s": rollout_tokens / max(t1 - t0, 1e-9),
              "perf/update_tok_s": update_tokens / max(t2 - t1, 1e-9)})
  return state, out


def eval_settings(config) -> eval_runner.EvalSettings:
  """The `concise_jax.eval` settings of a run's held-out evaluation: greedy at temperature 0,
  else `eval.samples_per_prompt` samples; prompts encoded and cut as in training rollouts."""
  c = config
  sampled = c.eval.temperature > 0
  g = c.eval.samples_per_prompt if sampled else 1
  return eval_runner.EvalSettings(
      greedy=not sampled, k=g if sampled else 0, temperature=c.eval.temperature,
      top_p=c.rollout.top_p, top_k=c.rollout.top_k, max_new_tokens=c.rollout.max_new_tokens,
      batch_size=c.rollout.prompts_per_step * g, system=c.data.system_prompt or None,
      instruction=c.data.instruction, seed=c.seed, max_prompt_tokens=c.rollout.max_prompt_tokens)


def eval_metrics(records: list[dict]) -> dict[str, float]:
  """`eval/...` scalars of evaluation records: `concise_jax.eval`'s summary, flattened
  (`eval/greedy/accuracy`, `eval/greedy/tokens/mean`, `eval/sampled/pass_at_k/4`, ...), plus the
  rollout-style names the training tables read (`eval/rollout/accuracy`, `eval/len/all/mean`)."""
  summary = eval_metrics_lib.summarize(records)
  out = eval_metrics_lib.flatten(summary, "eval/")
  comps = [c for r in records for c in ([r["greedy"]] if "greedy" in r else r["samples"])]
  m = metrics_lib.rollout_metrics([c["correct"] for c in comps], [c["tokens"] for c in comps],
                                  [c["truncated"] for c in comps],
                                  [rollout_step.has_answer_marker(c["text"]) for c in comps])
  out.update({f"eval/{k}": v for k, v in m.items()})
  return out


def evaluate(r: Trainer, state: TrainState) -> dict[str, float]:
  """Accuracy and lengths on the fixed eval prompts, by `concise_jax.eval`'s own path
  (`eval_runner.evaluate_dataset`), so the numbers match `python -m concise_jax.eval` on the
  same policy and settings; the same draws at every evaluation."""
  params = r.fns.model_params(state.params, r.frozen)
  policy = eval_runner.Policy("training", r.model_cfg, params, r.tokenizer, layout=r.layout)
  records, _ = eval_runner.evaluate_dataset(policy, r.eval_examples, eval_settings(r.config),
                                            eval_runner.InlineVerifier(r.check), label="eval",
                                            progress=False)
  return eval_metrics(records)


# --------------------------------------------------------------------------- the run


def run(config, workdir: str, *, stop_at_step: int | None = None) -> RunResult:
  """Trains `config.train.steps` updates in `workdir`, resuming from its newest intact checkpoint.

  Args:
    config: a validated run config (`configs/common.base_config` layout).
    workdir: run directory: ckpt/, tb/, metrics.jsonl, config.json (written once the config,
      the data and the restored checkpoint are known to be good).
    stop_at_step: stop (with a checkpoint) once this many updates are done, as a preempted
      job would; a later `run` resumes. For tests and time-limited jobs.

  Returns:
    RunResult(step, halted=True if a non-finite update stopped training, last metrics, state,
    preempted="SIGTERM"/"SIGINT" if a signal stopped it after a checkpoint of `step`).

  Raises:
    workdir_lock.WorkdirBusy: another live trainer holds `workdir`.
    checkpoint.CheckpointError: no usable checkpoint (damaged, or not this run's shapes).
  """
  config = options.resolve(config)   # the selected components' options only (idempotent)
  notes = []
  with workdir_lock.hold(workdir, report=notes.append), preemption.Watch() as watch:
    return _run(config, workdir, stop_at_step, watch, notes)


def _run(config, workdir: str, stop_at_step: int | None, watch: preemption.Watch,
         notes: list[str]) -> RunResult:
  r = make_trainer(config)
  state, close_checker = r.state, r.close
  manager = checkpoint.make_manager(workdir, keep=config.train.keep_ckpts,
                                    keep_every=config.train.keep_every)
  try:
    restored = checkpoint.restore(manager, state, on_damaged=config.train.on_bad_ckpt,
                                  report=notes.append, config=json.loads(config.to_json()))
  except BaseException:
    manager.close()
    close_checker()
    raise
  if restored is not None:
    state, meta = restored
    r.iterator.set_state(meta["data"])
    changed = checkpoint.config_changes(options.resolve_dict(meta["config"]),
                                        json.loads(config.to_json()))
    notes.append(f"resumed from step {int(state.step)}"
                 + (f"; config differs from the checkpoint's in: {', '.join(changed)}"
                    if changed else ""))
  step_index = int(jax.device_get(state.step))
  run_files.trim_metrics(workdir, step_index)   # rows past the restored step come again
  run_files.write_config(workdir, config)
  end = config.train.steps if stop_at_step is None else min(stop_at_step, config.train.steps)
  writer = metrics_lib.MetricsWriter(workdir, total_steps=config.train.steps,
                                     initial_step=step_index, log_every=config.train.log_every)
  for note in notes:
    writer.message(note)
  metrics, halted, preempted, saved_step = {}, False, "", step_index
  evaluating = config.eval.every > 0 and bool(r.eval_examples)
  eval_before = (step0_eval(workdir, step_index, lambda: evaluate(r, state), writer)
                 if evaluating else {})
  eval_after = {}
  def save():
    checkpoint.save(manager, state, {"data": r.iterator.get_state(),
                                     "config": json.loads(config.to_json())})
    if state.draft is not None:
      _export_draft(workdir, state, config)
  try:
    while step_index < end:
      if preemption.agree(watch.requested):
        preempted = watch.received or "a signal on another process"
        break
      state, metrics = train_step(r, state, step_index)
      step_index += 1
      if metrics["train/nonfinite"] > 0:
        halted = True
        writer.write(step_index, metrics)
        manager.wait_until_finished()
        writer.message(f"HALT: non-finite loss/gradient/update at step {step_index}; update not "
                       f"applied, nothing saved; last good (verified) checkpoint: step "
                       f"{checkpoint.newest_verified_step(manager)}")
        break
      if evaluating and (step_index % config.eval.every == 0
                         or step_index == config.train.steps):
        eval_after = evaluate(r, state)
        metrics.update(eval_after)
      writer.write(step_index, metrics)
      if step_index % config.train.ckpt_every == 0 or step_index == end:
        save()
        saved_step = step_index
    if preempted and saved_step != step_index:
      save()   # the last completed step
  finally:
    manager.wait_until_finished()
    manager.close()
    writer.close()
    close_checker()
  logging.info("run finished at step %d (halted=%s, preempted=%s)", step_index, halted,
               preempted or False)
  return RunResult(step=step_index, halted=halted, metrics=metrics, state=state,
                   eval_before=eval_before, eval_after=eval_after, preempted=preempted)


def _export_draft(workdir: str, state: TrainState, config) -> None:
  """The newest draft head also as workdir/draft/ (a standalone draft checkpoint), which
  `python -m concise_jax.eval --speculative=eagle --draft=WORKDIR` and `init_from` read."""
  draft = distributed.fetch(state.draft)   # a collective: every process takes part
  if not distributed.is_lead():
    return
  draft_checkpoint.save(os.path.join(workdir, "draft"), draft.head, draft.token_counts,
                        {"source": "training", "step": int(draft.step),
                         "train_step": int(jax.device_get(state.step)),
                         "model": config.model.name})


def step0_eval(workdir: str, step_index: int, run_eval, writer) -> dict:
  """The step-0 evaluation (`run_eval()`): run and saved to workdir/eval_step0.json on a fresh
  start, read back on a resume (the initial policy is gone by then). Shared by the trainers."""
  path = os.path.join(workdir, "eval_step0.json")
  if step_index == 0:
    out = run_eval()
    writer.write(0, out, advance=False)
    if distributed.is_lead():
      with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, sort_keys=True)
    return out
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return {}
