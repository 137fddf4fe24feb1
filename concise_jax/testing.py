"""Small builders for tests and notebooks: hand-written rollouts without a model."""
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
    **optional: any optional `Rollout` field (`ref_logp_bt=...`, `budget_b=...`), as given.

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
      **{k: jnp.asarray(v) for k, v in optional.items()},
  )


def permute_groups(tree, perm_p: Sequence[int], group_size: int):
  """Reorders whole groups of every per-sample leaf of `tree` (leading axis B)."""
  idx_b = (np.asarray(perm_p)[:, None] * group_size + np.arange(group_size)).reshape(-1)
  # numpy gather: no per-leaf device op to compile in eager mode
  return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[idx_b]), tree)
