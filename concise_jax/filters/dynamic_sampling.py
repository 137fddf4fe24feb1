"""Dynamic-sampling group filters (jnp, jit-able keep masks of static shape)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.filters.base import GROUP_FILTERS


@GROUP_FILTERS.register("none")
def keep_all(batch: types.Rollout, reward_out: types.RewardOutput, *, group_size: int):
  """Keeps every group (no dynamic sampling); lets configs select "no filter" by name."""
  del reward_out, group_size
  return jnp.ones(batch.correct_b.shape, bool)


@GROUP_FILTERS.register("nonzero_variance")
def nonzero_variance(batch: types.Rollout, reward_out: types.RewardOutput, *,
                     group_size: int) -> jax.Array:
  """DAPO dynamic sampling (Yu et al., arXiv:2503.14476 §3.2).

  Keeps a group iff 0 < #correct < G on the RAW verifier result, i.e. its correctness varies
  (all-correct and all-wrong groups give zero GRPO advantage under 0/1 rewards). Integer counts,
  so there is no variance tolerance. With G = 1 no group can vary, so nothing is kept.

  Args:
    batch: reads `correct_b` [B].
    reward_out: unused; shaped rewards must not decide this filter.
    group_size: G (static).

  Returns:
    keep_b [B] bool, constant within each group.
  """
  del reward_out
  count_p = types.to_groups(batch.correct_b.astype(jnp.int32), group_size).sum(axis=1)
  keep_p = (count_p > 0) & (count_p < group_size)
  return jnp.repeat(keep_p, group_size)
