"""PEAR — Phase Entropy Aware Reward (Huang, Lu, Zhang, arXiv:2510.08026).

Entropy tracks length, and the thinking phase is far more entropic than the answer phase:
penalising thinking-phase entropy shortens reasoning, while a little answer-phase entropy is
allowed. The reward declares two host needs: "entropy" (the rollout policy's, from the
sampler's tempered distribution) and "think_mask" ([B, T] float32, host side: before </think>,
or for models without tags before the final-answer line; see `train.host_features`).
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def phase_entropies_b(batch: types.Rollout) -> tuple[jax.Array, jax.Array]:
  """([B] mean thinking-phase entropy, [B] mean answer-phase entropy); 0 for an empty phase
  (a missing answer phase gives H_answer = 0, as the paper's missing-tag rule says)."""
  h_bt = types.feature(batch, "entropy", "reward 'pear'") * batch.mask_bt
  think_mask_bt = types.feature(batch, "think_mask", "reward 'pear'")
  think_bt = think_mask_bt * batch.mask_bt
  answer_bt = (1.0 - think_mask_bt) * batch.mask_bt
  h_think_b = (h_bt * think_bt).sum(axis=1) / jnp.maximum(think_bt.sum(axis=1), 1.0)
  h_answer_b = (h_bt * answer_bt).sum(axis=1) / jnp.maximum(answer_bt.sum(axis=1), 1.0)
  return h_think_b, h_answer_b


@REWARDS.register("pear", needs=("entropy", "think_mask"))
def pear(batch: types.Rollout, state: tuple, *, group_size: int,
         alpha: float = 1.0, penalty_weight: float = 1.0, max_penalty: float = 0.5,
         penalize_wrong: bool = False, correct_reward: float = 1.0, wrong_reward: float = 0.0):
  """PEAR: r[i] = r_correct[i] − w·min(max(0, H_think − α·H_answer), max_penalty).

  The max(0, ·) form, π_old entropies and the missing-tag rule are sourced (arXiv:2510.08026);
  Inferred (not found): entropies are phase means, α = 1, the weight w = 1, the clip at
  `max_penalty` = 0.5 (keeps a correct answer at least 0.5 above a wrong one at any entropy)
  and that only correct answers are penalised (`penalize_wrong=False`).

  Args:
    batch: reads correct_b, mask_bt, features["entropy"], features["think_mask"].
    state: returned unchanged.
    group_size: unused (uniform signature).
    alpha: weight of the answer-phase entropy inside the max.
    penalty_weight: w, scale of the entropy penalty.
    max_penalty: upper bound of the unweighted penalty.
    penalize_wrong: also subtract the penalty from wrong answers.
    correct_reward, wrong_reward: r_correct.

  Returns:
    (RewardOutput with rewards_b, state, metrics: pear/h_think, pear/h_answer, pear/penalty).
  """
  del group_size
  h_think_b, h_answer_b = phase_entropies_b(batch)
  pen_b = jnp.minimum(jnp.maximum(0.0, h_think_b - alpha * h_answer_b), max_penalty)
  on_b = jnp.ones_like(batch.correct_b) if penalize_wrong else batch.correct_b
  pen_b = jnp.where(on_b, penalty_weight * pen_b, 0.0)
  r_b = jnp.where(batch.correct_b, correct_reward, wrong_reward) - pen_b
  return types.make_reward_output(batch, r_b), state, {
      "pear/h_think": h_think_b.mean(), "pear/h_answer": h_answer_b.mean(),
      "pear/penalty": pen_b.mean()}
