"""Balanced online difficulty filtering (Bae et al., arXiv:2504.03380)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.filters.base import GROUP_FILTERS


@GROUP_FILTERS.register("balanced_difficulty")
def balanced_difficulty(batch: types.Rollout, reward_out: types.RewardOutput, *,
                        group_size: int, p_low: float = 0.25,
                        p_high: float = 0.75) -> jax.Array:
  """Keep groups whose pass rate p̂ = #correct / G lies in [p_low, p_high].

  The learning signal of a prompt is bounded below by p(1 − p), which peaks at p = 0.5, so the
  batch is filled ("stacked" by the refill loop) with prompts of intermediate difficulty for the
  current policy. DAPO's `nonzero_variance` is the degenerate band 0 < p̂ < 1. Decided on the RAW
  `correct_b`. Inferred: the band 0.25–0.75 (recalled, not found in reachable text); bounds are
  inclusive; a tiny tolerance makes p̂ = k/G compare exactly at the bounds.

  Args:
    batch: reads `correct_b` [B].
    reward_out: unused; shaped rewards must not decide this filter.
    group_size: G (static).
    p_low, p_high: inclusive band of the group pass rate.

  Returns:
    keep_b [B] bool, constant within each group.
  """
  del reward_out
  pass_p = types.to_groups(batch.correct_b.astype(jnp.float32), group_size).mean(axis=1)
  tol = 1e-6
  keep_p = (pass_p >= p_low - tol) & (pass_p <= p_high + tol)
  return jnp.repeat(keep_p, group_size)
