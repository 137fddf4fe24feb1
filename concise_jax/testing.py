"""Small builders for tests and notebooks: hand-written rollouts without a model."""
import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import types


def make_rollout(
    correct: Sequence[int | bool],
    length: Sequence[int],
    *,
    max_len: int | None = None,
    format_ok: Sequence[int | bool] | None = None,
    truncated: Sequence[int | bool] | None = None,
    prompt_index: Sequence[int] | None = None,
    group_size: int | None = None,
    old_logp: np.ndarray | None = None,
    **optional,
) -> types.Rollout:
  """Builds a `Rollout` whose completion mask is the first `length[i]` tokens of each row.

  Args:
    correct: [B] raw verifier results.
    length: [B] completion lengths in tokens (0 allowed: an empty row).
    max_len: T, the padded completion length; defaults to max(length), at least 1.
    format_ok: [B]; defaults to all True.
    truncated: [B]; defaults to `length == max_len` when `max_len` is given, else all False.
    prompt_index: [B] dataset ids; defaults to the group index (`i // group_size`) when
      `group_size` is given, else `i`.
    group_size: only used for the default `prompt_index`.
    old_logp: [B, T] sampling log-probs; defaults to zeros.
    **optional: any optional `Rollout` field (`ref_logp_bt=...`, `budget_b=...`), as given;
      `features={"entropy": ...}` fills `Rollout.features` (host / sampler needs).

  Returns:
    A `Rollout` with tokens 1..T on valid positions and 0 on padding.
  """
  length_b = np.asarray(length, np.int32)
  batch_size = len(length_b)
  t = max(int(length_b.max(initial=0)), 1) if max_len is None else max_len
  mask_bt = (np.arange(t)[None, :] < length_b[:, None]).astype(np.float32)
  if truncated is None:
    truncated = (length_b >= t) if max_len is not None else np.zeros(batch_size, bool)
  if prompt_index is None:
    prompt_index = np.arange(batch_size) // (group_size or 1)
  return types.Rollout(
      tokens_bt=jnp.asarray(mask_bt * (np.arange(t)[None, :] + 1), jnp.int32),
      mask_bt=jnp.asarray(mask_bt),
      length_b=jnp.asarray(length_b),
      correct_b=jnp.asarray(np.asarray(correct, bool)),
      format_ok_b=jnp.asarray(np.ones(batch_size, bool) if format_ok is None
                              else np.asarray(format_ok, bool)),
      truncated_b=jnp.asarray(np.asarray(truncated, bool)),
      prompt_index_b=jnp.asarray(np.asarray(prompt_index, np.int32)),
      old_logp_bt=jnp.asarray(np.zeros((batch_size, t), np.float32) if old_logp is None
                              else old_logp),
      features={k: jnp.asarray(v) for k, v in optional.pop("features", {}).items()},
      **{k: jnp.asarray(v) for k, v in optional.items()},
  )


# Per-field fill for `with_optional_fields`: (rng, batch) → value. A field missing here is
# filled by its suffix.
_OPTIONAL_FILL = {
    "budget_b": lambda rng, x: rng.integers(1, 2 * x.mask_bt.shape[1] + 1, x.batch_size),
    "ref_logp_bt": lambda rng, x: -rng.uniform(0.0, 3.0, x.mask_bt.shape),
    "teacher_logp_bt": lambda rng, x: -rng.uniform(0.0, 3.0, x.mask_bt.shape),
}
# Per-need fill of `Rollout.features`; a need missing here is filled by its name (a "*mask"
# as a [B, T] 0/1 mask, anything else as small [B] int32).
_FEATURE_FILL = {
    "entropy": lambda rng, x: rng.uniform(0.0, 2.0, x.mask_bt.shape) * np.asarray(x.mask_bt),
    "reflection_count": lambda rng, x: rng.integers(0, 100, x.batch_size),
    "repetitive": lambda rng, x: rng.integers(0, 2, x.batch_size).astype(bool),
    "cut_length": lambda rng, x: rng.integers(0, np.asarray(x.length_b) + 1),
    "cut_correct": lambda rng, x: rng.integers(0, 2, x.batch_size).astype(bool),
}
_NOT_ROW_FEATURES = ("band_monitor",)   # host routines, not per-row inputs
_FILL_DTYPES = {"i": np.int32, "u": np.int32, "f": np.float32, "b": bool}


def with_optional_fields(batch: types.Rollout, *, seed: int = 0,
                         prompt_len: int = 4) -> types.Rollout:
  """`batch` with every optional `Rollout` field that is None filled with plausible values.

  For registry-wide tests: a method reading any optional input gets one. Fields are found by
  introspection, so fields added to `Rollout` later are filled too: [B] ones as small int32,
  [B, T] masks as random 0/1 and other [B, T] ones as float32 in [0, 1), both under the
  completion mask, [B, S] ones as prompt-shaped (`prompt_len` columns). `features` gets every
  need any registered component declares (`_FEATURE_FILL`). Given fields are kept.
  """
  rng = np.random.default_rng(seed)
  b, t = batch.mask_bt.shape
  mask_bt = np.asarray(batch.mask_bt)
  fills = {}
  for field in dataclasses.fields(batch):
    if field.default is not None or getattr(batch, field.name) is not None:
      continue
    if field.name in _OPTIONAL_FILL:
      value = np.asarray(_OPTIONAL_FILL[field.name](rng, batch))
      value = value.astype(_FILL_DTYPES[value.dtype.kind])
    elif field.name.endswith("mask_bt"):   # 0/1 masks inside the completion
      value = (rng.uniform(0.0, 1.0, (b, t)) < 0.5).astype(np.float32) * mask_bt
    elif field.name.endswith("_bt"):
      value = rng.uniform(0.0, 1.0, (b, t)).astype(np.float32) * mask_bt
    elif field.name.endswith("_bs"):
      kind = np.int32 if "tokens" in field.name else np.float32
      value = np.ones((b, prompt_len), kind)
    else:
      value = rng.integers(0, 8, b).astype(np.int32)
    fills[field.name] = jnp.asarray(value)
  features = dict(batch.features)
  for name in _declared_needs():
    if name in features or name in _NOT_ROW_FEATURES:
      continue
    if name in _FEATURE_FILL:
      value = np.asarray(_FEATURE_FILL[name](rng, batch))
      value = value.astype(_FILL_DTYPES[value.dtype.kind])
    elif name.endswith("mask"):
      value = (rng.uniform(0.0, 1.0, (b, t)) < 0.5).astype(np.float32) * mask_bt
    else:
      value = rng.integers(0, 8, b).astype(np.int32)
    features[name] = jnp.asarray(value)
  return batch.replace(features=features, **fills)


def _declared_needs() -> list[str]:
  """Every need name a registered reward, advantage or budget declares (conditions dropped)."""
  from concise_jax import advantages, budgets, rewards  # pylint: disable=import-outside-toplevel
  names = []
  for registry in (rewards.REWARDS, advantages.ADVANTAGES, budgets.BUDGET_SCHEDULES):
    for component in map(registry.component, registry.names()):
      names += [need.partition(" if ")[0].strip() for need in component.needs]
  return list(dict.fromkeys(names))


def permute_groups(tree, perm_p: Sequence[int], group_size: int):
  """Reorders whole groups of every per-sample leaf of `tree` (leading axis B)."""
  idx_b = (np.asarray(perm_p)[:, None] * group_size + np.arange(group_size)).reshape(-1)
  # numpy gather: no per-leaf device op to compile in eager mode
  return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[idx_b]), tree)
