"""ARLCP: reflection- and length-penalties calibrated within each group's correct answers
(ICLR 2026, OpenReview aRzEtK9Ite).

The keyword count is text processing, so it happens on the host: the reward declares the need
"reflection_count" ([B] int32), whose provider (`train.host_features`) counts `ARLCP_KEYWORDS`
in each completion, only in runs that select this reward. The reward itself is jnp.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS

# ARLCP's keyword set K (official code, `count_keywords_counter`), matched case-insensitively as
# whole words by the host provider (`train.host_features.count_reflections`). Broader than
# eval.metrics.REFLECTION_PHRASES: it includes "but", "however", "check", "oh", which also occur
# outside reflection; the method's weights were tuned with it.
ARLCP_KEYWORDS = ("wait", "alternatively", "hold on", "another thought", "verify",
                  "think again", "but", "however", "alternative", "check", "double-check",
                  "oh", "hmm")


def correct_stats_pg(x_pg: jax.Array, correct_pg: jax.Array, ddof: int):
  """(mean [P, 1], std [P, 1]) of x over each group's correct answers.

  ARLCP's defaults when the statistic is undefined: mean 0 and std 1 with no correct answer,
  std 1 with exactly one (official code: `statistics.mean` / `statistics.stdev`, ddof 1).
  """
  w_pg = correct_pg.astype(jnp.float32)
  n_p1 = w_pg.sum(axis=1, keepdims=True)
  mean_p1 = (w_pg * x_pg).sum(axis=1, keepdims=True) / jnp.maximum(n_p1, 1.0)
  ss_p1 = (w_pg * (x_pg - mean_p1) ** 2).sum(axis=1, keepdims=True)
  std_p1 = jnp.sqrt(ss_p1 / jnp.maximum(n_p1 - ddof, 1.0))
  return mean_p1, jnp.where(n_p1 > 1, std_p1, 1.0)


def group_zscore_b(x_b: jax.Array, correct_b: jax.Array, group_size: int, ddof: int,
                   eps: float) -> jax.Array:
  """[B] (x − μ) / (σ + eps) with μ, σ over the correct answers of each sample's group."""
  x_pg = types.to_groups(x_b, group_size)
  mean_p1, std_p1 = correct_stats_pg(x_pg, types.to_groups(correct_b, group_size), ddof)
  return types.from_groups((x_pg - mean_p1) / (std_p1 + eps))


def reflection_weight_b(count_b: jax.Array, count_thresholds: tuple[int, ...],
                        reflection_weights: tuple[float, ...]) -> jax.Array:
  """w1 by reflection count: reflection_weights[k], k = #{thresholds t : count > t}."""
  thr_k = jnp.asarray(count_thresholds, jnp.float32)
  tier_b = (count_b.astype(jnp.float32)[:, None] > thr_k[None, :]).sum(axis=1)
  return jnp.asarray(reflection_weights, jnp.float32)[tier_b]


@REWARDS.register("arlcp", needs=("reflection_count",))
def arlcp(batch: types.Rollout, state: tuple, *, group_size: int,
          count_thresholds: tuple[int, ...] = (40, 80),
          reflection_weights: tuple[float, ...] = (0.05, 0.10, 0.15),
          total_weight: float = 0.2, std_ddof: int = 1, eps: float = 1e-6):
  """ARLCP ("Stop Unnecessary Reflection: Training LRMs for Efficient Reasoning with Adaptive
  Reflection and Length Coordinated Penalty", ICLR 2026, OpenReview aRzEtK9Ite).

  For a correct answer: ref = σ((c − μ_c)/(σ_c + eps)), len = σ((L − μ_L)/(σ_L + eps)) with the
  statistics over the correct answers of the same group; w1 grows with the answer's own
  reflection count c (0.05 up to 40, 0.10 up to 80, else 0.15) and w2 = total_weight − w1, so
  heavy reflectors are steered by the reflection term and light ones by length;
  r = 1 − w1·ref − w2·len ∈ (0.8, 1). Wrong answers get 0. Defaults are the official code's
  (`src/rm.py`, `verl/workers/reward_manager/naive.py`). Its format rule (exactly one
  `</think>`, no `<think>`) is not applied: our verifier's `correct_b` decides correctness.

  Args:
    batch: the rollout; reads `correct_b`, `length_b`, `features["reflection_count"]` [B].
    state: returned unchanged.
    group_size: G (static).
    count_thresholds: reflection-count tier bounds (inclusive upper bounds), static.
    reflection_weights: w1 per tier, len(count_thresholds) + 1 values, static.
    total_weight: w1 + w2.
    std_ddof: delta degrees of freedom of the group std over correct answers (1 = stdev).
    eps: added to the std.

  Returns:
    (RewardOutput with rewards_b [B], state, {"arlcp/reflections_mean"}).
  """
  reflection_count_b = types.feature(batch, "reflection_count", "reward 'arlcp'")
  if len(reflection_weights) != len(count_thresholds) + 1:
    raise ValueError("arlcp needs len(count_thresholds) + 1 reflection_weights")
  count_b = reflection_count_b.astype(jnp.float32)
  ref_b = jax.nn.sigmoid(group_zscore_b(count_b, batch.correct_b, group_size, std_ddof, eps))
  len_b = jax.nn.sigmoid(group_zscore_b(batch.length_b.astype(jnp.float32), batch.correct_b,
                                        group_size, std_ddof, eps))
  w1_b = reflection_weight_b(count_b, tuple(count_thresholds), tuple(reflection_weights))
  penalty_b = w1_b * ref_b + (total_weight - w1_b) * len_b
  r_b = jnp.where(batch.correct_b, 1.0 - penalty_b, 0.0)
  return types.make_reward_output(batch, r_b), state, {
      "arlcp/reflections_mean": count_b.mean()}
