"""Host side of a rollout: prompts → chat ids → left pad → `rollout.sample` → text → verify.

Returns a `Rollout` with numpy leaves (the refill loop gathers groups across batches on the
host; jit moves them to the mesh). Prompts are padded to one fixed length so the sampler and
the update compile once.
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np

from concise_jax import data, distributed, rollout, types, verify
from concise_jax.rollout import mesh_sampling
from concise_jax.train import host_features
from concise_jax.verify import extract

# (completions, references, kinds) → one bool per completion.
CheckFn = Callable[[Sequence[str], Sequence[str], Sequence[str]], list[bool]]


# The one prompt encoding and sampling-settings code, shared with `concise_jax.eval`.
PromptFormat = mesh_sampling.PromptFormat
encode_prompts = mesh_sampling.encode_prompts


def prompt_format(config) -> PromptFormat:
  """Training prompts: the run's instruction, system turn, fixed padded length and (L1) the
  budget statement template."""
  return PromptFormat(instruction=config.data.instruction,
                      system_prompt=config.data.system_prompt,
                      max_prompt_tokens=config.rollout.max_prompt_tokens,
                      budget_template=config.budget.prompt_template)


def sampling_params(config, tokenizer, *, temperature: float | None = None):
  """Static `SamplingParams` for training rollouts (or eval, with its own temperature); the
  sampler returns token entropies only when a selected component declared that need."""
  return mesh_sampling.sampling_params(
      tokenizer, max_new_tokens=config.rollout.max_new_tokens,
      temperature=config.rollout.temperature if temperature is None else temperature,
      top_k=config.rollout.top_k, top_p=config.rollout.top_p,
      return_entropy=host_features.needs_entropy(config))


def steering_from_config(config):
  """The `models.Steering` of `config.rollout.steering`, or None when its path is empty."""
  sc = config.rollout.get("steering")
  return None if sc is None or not sc.path else _load_steering(sc.path, float(sc.strength),
                                                                 sc.rule)


@functools.lru_cache(maxsize=4)
def _load_steering(path: str, strength: float, rule: str):
  from concise_jax import steering  # pylint: disable=import-outside-toplevel
  return steering.load(path).steering(strength, rule)


def has_answer_marker(text: str) -> bool:
  """Format check: an explicit final answer (\\boxed{}, `Answer:`, `####`), not a bare number."""
  text = extract.sanitize(text)
  return any(f(text) is not None for f in (extract.find_boxed, extract.find_answer_marker,
                                            extract.find_hash_answer))


def check_in_process(completions, references, kinds) -> list[bool]:
  """Verification without a worker pool (tiny runs, numeric answers); errors count as wrong."""
  out = []
  for c, r, k in zip(completions, references, kinds):
    try:
      out.append(verify.is_correct(c, r, k))
    except Exception:  # pylint: disable=broad-except  # malformed item: incorrect, not fatal
      out.append(False)
  return out


def rollout_batch(model_cfg, params: dict, tokenizer, examples: Sequence[data.Example],
                  prompt_index_p: Sequence[int], key: jax.Array, *,
                  sp: rollout.SamplingParams, group_size: int, fmt: PromptFormat,
                  check: CheckFn, features: Callable | None = None,
                  budget_p: np.ndarray | None = None, budget_template: str = "",
                  layout=None, steering=None,
                  sample_fn: Callable | None = None) -> tuple[types.Rollout, list[str], dict]:
  """Samples `group_size` completions per example and scores their correctness.

  Args:
    model_cfg, params: the policy (LoRA already merged).
    tokenizer: has `encode_chat`, `decode`, `eos_ids`, `pad_id`.
    examples: P prompts.
    prompt_index_p: their dataset indices (rows of the reward-state tables).
    key: sampling key.
    sp: static sampling params.
    group_size: G.
    fmt: prompt formatting.
    check: the verifier.
    features: optional `host_features.HostFeatures` filling `Rollout.features` with the host
      features the selected components declared (`make_host_features`).
    budget_p: optional [P] int32 per-prompt token budgets (a budget schedule's output): the
      decode cap of each prompt's samples, or, with a budget template, stated in the prompt.
    budget_template: overrides `fmt.budget_template` when given: e.g. "Think for {n}
      tokens." (L1), appended to each prompt with its budget, recorded in `Rollout.budget_b`,
      and NOT enforced as the decode cap.
    layout: the mesh to decode on (`sharding.Layout`); None = one device.
    steering: optional `models.Steering` (ASC, `steering_from_config`). `old_logp_bt` is then
      the steered sampler's log-prob, which the update must keep (see `step.py`).
    sample_fn: replaces `mesh_sampling.sample` (same arguments and result), e.g. the
      speculative sampler with the current draft head (`draft.online.speculative_sample_fn`).

  Returns:
    (Rollout with B = P·G numpy rows incl. prompt tokens — the same whole batch on every
    process —, the completion texts of this process's rows, stats dict).
  """
  if budget_template:
    fmt = dataclasses.replace(fmt, budget_template=budget_template)
  stated = budget_p is not None and bool(fmt.budget_template)
  tokens_ps, mask_ps, cut = encode_prompts(tokenizer, examples, fmt,
                                           budget_p if stated else None)
  cap_b = None if budget_p is None or stated else np.repeat(
      np.asarray(budget_p, np.int32), group_size)
  sampled = (sample_fn or mesh_sampling.sample)(model_cfg, params, tokens_ps, mask_ps, key, sp,
      num_samples=group_size, layout=layout, budget_b=cap_b, steering=steering)
  out, rows = sampled.out, sampled.rows
  rep = lambda x: np.repeat(np.asarray(x), group_size, axis=0)
  batch = types.Rollout(
      tokens_bt=np.asarray(out.tokens_bt, np.int32),
      mask_bt=np.asarray(out.mask_bt, np.float32),
      length_b=np.asarray(out.length_b, np.int32),
      correct_b=np.zeros(out.length_b.shape, bool),
      format_ok_b=np.zeros(out.length_b.shape, bool),
      truncated_b=np.asarray(out.truncated_b, bool),
      prompt_index_b=rep(np.asarray(prompt_index_p, np.int32)),
      old_logp_bt=np.asarray(out.logp_bt, np.float32),
      prompt_tokens_bs=rep(tokens_ps).astype(np.int32),
      prompt_mask_bs=rep(mask_ps).astype(np.float32))
  if stated:
    batch = batch.replace(budget_b=rep(np.asarray(budget_p, np.int32)))
  if out.entropy_bt is not None:   # sampler flag set because a component declared "entropy"
    batch = batch.replace(features={"entropy": np.asarray(out.entropy_bt, np.float32)})
  # Host work (text, verification, host features) only on this process's rows; the per-row
  # results are then combined so every process holds the whole scored batch.
  local = jax.tree.map(lambda x: x[rows], batch)
  texts = rollout.completions_to_text(tokenizer, jax.tree.map(lambda x: x[rows], out))
  refs, kinds = _references(examples, group_size, rows)
  local = local.replace(
      correct_b=np.asarray(check(texts, refs, kinds), bool),
      format_ok_b=np.asarray([has_answer_marker(t) for t in texts], bool))
  if features is not None:
    local = features(local, texts, refs, kinds)
  batch = distributed.combine_rows(local, rows, batch.length_b.shape[0], sampled.owner)
  return batch, texts, {"prompts_cut": cut}


def _references(examples, group_size: int, rows: np.ndarray) -> tuple[list[str], list[str]]:
  """(reference answers, answer kinds) of the given sample rows."""
  per_prompt = [verify.reference_of(ex) for ex in examples]
  pairs = [per_prompt[r // group_size] for r in rows]
  return [p[0] for p in pairs], [p[1] for p in pairs]
