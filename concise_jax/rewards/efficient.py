"""Efficient Reasoning (Arora & Zanette, "Training Language Models to Reason Efficiently",
arXiv:2502.04463): a correct answer earns less the longer it is than its group's other
correct answers.

Stateless and host-free: the length statistics are the group's own, so the reward needs no
`init=` and no `needs=`.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS
from concise_jax.rewards.reflection import group_zscore_b


@REWARDS.register("efficient_reasoning")
def efficient_reasoning(batch: types.Rollout, state: tuple, *, group_size: int,
                        alpha: float = 0.1, std_ddof: int = 0, eps: float = 1e-6):
  """r[i] = I(correct[i]) · (1 − α·σ((L[i] − μ_c) / (σ_c + eps))) (arXiv:2502.04463 §3).

  μ_c, σ_c are the mean and std of the lengths of the correct answers in the sample's group
  (the paper's per-prompt statistics over its correct responses), so a correct answer of
  average length earns 1 − α/2, a much shorter one almost 1, a much longer one almost 1 − α;
  wrong answers earn 0, so every correct answer stays above every wrong one for α < 1.
  α trades accuracy for length (the paper sweeps 0.05 to 0.4; 0.1 is our default).
  Inferred (not found): σ_c is the population std (`std_ddof=0`); a group with one correct
  answer uses σ_c = 1 and with none μ_c = 0 (ARLCP's conventions, `correct_stats_pg`); eps.

  Args:
    batch: the rollout; reads `correct_b`, `length_b` [B].
    state: `()` (stateless); returned unchanged.
    group_size: G (static).
    alpha: α, the largest length discount of a correct answer (0 ≤ α < 1).
    std_ddof: delta degrees of freedom of σ_c.
    eps: added to σ_c.

  Returns:
    (RewardOutput with rewards_b [B], state,
     {"efficient_reasoning/discount": mean α·σ(z) over correct answers}).
  """
  z_b = group_zscore_b(batch.length_b.astype(jnp.float32), batch.correct_b, group_size,
                       std_ddof, eps)
  discount_b = alpha * jax.nn.sigmoid(z_b)
  correct_f = batch.correct_b.astype(jnp.float32)
  r_b = correct_f * (1.0 - discount_b)
  mean_discount = (discount_b * correct_f).sum() / jnp.maximum(correct_f.sum(), 1.0)
  return types.make_reward_output(batch, r_b), state, {
      "efficient_reasoning/discount": mean_discount}
