"""Length-aware rewards computed from token counts (`Rollout.length_b`), never characters."""
import math

import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS
from concise_jax.rewards.correctness import outcome_b


def kimi_length_term_b(length_b: jax.Array, correct_b: jax.Array, group_size: int) -> jax.Array:
  """Kimi k1.5 group min–max length term (arXiv:2501.12599).

  lam[i] = 0.5 − (L[i] − Lmin_g) / (Lmax_g − Lmin_g), with Lmin/Lmax over ALL responses of the
  group (correct or not, truncated included) and lam = 0 when every length in the group is equal
  (Laser's convention, instead of dividing by zero). Correct answers get lam, wrong answers only
  its negative part: min(0, lam).

  Args:
    length_b: [B] completion lengths in tokens.
    correct_b: [B] bool raw correctness.
    group_size: G.

  Returns:
    [B] float32 in [−0.5, 0.5].
  """
  l_pg = types.to_groups(length_b.astype(jnp.float32), group_size)
  l_min_p1 = l_pg.min(axis=1, keepdims=True)
  span_p1 = l_pg.max(axis=1, keepdims=True) - l_min_p1
  safe_span_p1 = jnp.where(span_p1 > 0, span_p1, 1.0)  # no 0/0 in the untaken branch either
  lam_pg = jnp.where(span_p1 > 0, 0.5 - (l_pg - l_min_p1) / safe_span_p1, 0.0)
  lam_b = types.from_groups(lam_pg)
  return jnp.where(correct_b, lam_b, jnp.minimum(lam_b, 0.0))


@REWARDS.register("kimi_length")
def kimi_length(batch: types.Rollout, state: tuple, *, group_size: int,
                correct_reward: float = 1.0, wrong_reward: float = -0.5,
                length_weight: float = 0.4):
  """Kimi k1.5 length reward (Kimi Team, arXiv:2501.12599 §2.3.3 "length penalty").

  r[i] = C[i] + length_weight · len_reward[i], with C = correct_reward / wrong_reward and
  len_reward from `kimi_length_term_b`. Defaults follow the Laser reference implementation
  (`compute_kimi_penalty`: C = +1 / −0.5, weight 0.4); the Kimi report's own weight and its
  warm-up schedule are unverified. At equal length a correct answer never scores
  below a wrong one while correct_reward − wrong_reward ≥ 0.5 · length_weight.

  Args:
    batch: the rollout; reads `correct_b`, `length_b` [B].
    state: returned unchanged.
    group_size: G (static).
    correct_reward: base reward of a correct answer.
    wrong_reward: base reward of a wrong answer.
    length_weight: weight w of the length term.

  Returns:
    (RewardOutput with rewards_b [B] float32, state, {}).
  """
  len_b = kimi_length_term_b(batch.length_b, batch.correct_b, group_size)
  r_b = outcome_b(batch.correct_b, correct_reward, wrong_reward) + length_weight * len_b
  return types.make_reward_output(batch, r_b), state, {}


def top_fraction_groups_p(ratio_p: jax.Array, top_fraction: float,
                          min_ratio: float) -> jax.Array:
  """[P] bool: groups among the top `top_fraction` by `ratio_p`, ties at the cut included.

  k = ceil(top_fraction · P) groups are asked for; every group whose ratio equals the k-th
  largest is taken too, so the result does not depend on the order of the groups (the selected
  share can exceed `top_fraction` under ties). Groups with ratio ≤ `min_ratio` are never taken.
  """
  num_groups = ratio_p.shape[0]
  # round() first: 0.1 * 30 is 3.0000000000000004 in floating point, and ceil would give 4.
  k = min(num_groups, math.ceil(round(top_fraction * num_groups, 9)))
  if k <= 0:
    return jnp.zeros((num_groups,), bool)
  threshold = jnp.sort(ratio_p)[num_groups - k]
  return (ratio_p >= threshold) & (ratio_p > min_ratio)


@REWARDS.register("grpo_lambda")
def grpo_lambda(batch: types.Rollout, state: tuple, *, group_size: int,
                top_fraction: float = 0.5, min_correct_ratio: float = 0.0,
                length_weight: float = 0.4):
  """GRPO-λ (Dai, Liu, Si, arXiv:2505.18086): length penalty only where safe.

  p[g] = mean correctness of group g. The groups among the top-λ fraction of the batch by p[g]
  get the Kimi k1.5 length reward I(correct) + length_weight · len_reward (arXiv:2501.12599); all
  other groups get the plain 0/1 reward I(correct).

  Inferred (not found in the paper): λ (`top_fraction`) is a fraction of the batch's groups,
  k = ceil(λ·P), ties at the k-th ratio are all selected (order-independent); groups with
  p ≤ `min_correct_ratio` are never selected, so an all-wrong group is not pushed toward short
  wrong answers when few groups have any correct answer; the length reward is Kimi's on a 0/1
  base; λ = 0.5 and length_weight = 0.4 (Laser's Kimi weight) are our defaults.

  Args:
    batch: the rollout; reads `correct_b`, `length_b` [B].
    state: returned unchanged (batch statistics only).
    group_size: G (static).
    top_fraction: λ, the share of groups that receive the length penalty.
    min_correct_ratio: groups at or below this correctness ratio always get the 0/1 reward.
    length_weight: weight of the Kimi length term in selected groups.

  Returns:
    (RewardOutput with rewards_b [B] and group_flags_b [B] = 1 in selected groups, state,
     {"grpo_lambda/selected_frac": share of groups selected}).
  """
  correct_f = batch.correct_b.astype(jnp.float32)
  p_p = types.to_groups(correct_f, group_size).mean(axis=1)
  sel_p = top_fraction_groups_p(p_p, top_fraction, min_correct_ratio)
  sel_b = jnp.repeat(sel_p, group_size)
  len_b = kimi_length_term_b(batch.length_b, batch.correct_b, group_size)
  r_b = correct_f + jnp.where(sel_b, length_weight * len_b, 0.0)
  out = types.make_reward_output(batch, r_b, group_flags_b=sel_b.astype(jnp.float32))
  return out, state, {"grpo_lambda/selected_frac": sel_p.astype(jnp.float32).mean()}
