"""DLER's truncation reward and its difficulty-aware variant (arXiv:2510.15110).

Only the reward part lives here. DLER's other pieces are separate registry entries chosen in
`configs/dler.py`: batch-wise advantage normalisation (advantages), clip-higher with dual clip
(losses) and DAPO dynamic sampling (filters); its update-selective weight merging is
`concise_jax.train.weight_merge`.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def within_cap_b(batch: types.Rollout, cap_b: jax.Array | int | None) -> jax.Array:
  """[B] bool: a correct answer that was not cut off and fits the cap.

  DLER treats a cut-off response as having no final answer. Our verifier may still find a
  number in a cut text (last-number extraction), so `truncated_b` is ANDed in explicitly.
  """
  ok_b = batch.correct_b & ~batch.truncated_b
  if cap_b is not None:  # Python None: decided at trace time
    ok_b = ok_b & (batch.length_b <= cap_b)
  return ok_b


@REWARDS.register("dler")
def dler(batch: types.Rollout, state: tuple, *, group_size: int,
         max_len: int | None = None):
  """DLER truncation reward (Liu et al., "DLER: Doing Length pEnalty Right", arXiv:2510.15110
  §2–3): r = I(correct ∧ not cut off ∧ L ≤ L_T).

  DLER's point is that this simplest penalty suffices once the optimiser is fixed, so the
  reward carries no shaping at all. In the paper L_T is the generation cap itself
  (max_response_length 4000), i.e. `max_len=None` here: only `truncated_b` cuts. A smaller
  `max_len` applies the same cut below the rollout cap (e.g. to sweep L_T without recompiling
  the sampler).

  Args:
    batch: the rollout; reads `correct_b`, `truncated_b`, `length_b` [B].
    state: returned unchanged (no cross-step state).
    group_size: unused (uniform signature).
    max_len: L_T in tokens, or None for the rollout cap only.

  Returns:
    (RewardOutput with rewards_b [B] in {0, 1}, state,
     {"dler/cut_frac": share of correct answers zeroed for length}).
  """
  del group_size
  ok_b = within_cap_b(batch, max_len)
  cut_b = batch.correct_b & ~ok_b
  return types.make_reward_output(batch, ok_b.astype(jnp.float32)), state, {
      "dler/cut_frac": cut_b.astype(jnp.float32).mean()}


def difficulty_tier_p(ratio_p: jax.Array, thresholds: tuple[float, ...]) -> jax.Array:
  """[P] int32 tier = number of thresholds the group's correctness ratio reaches (0 = hardest)."""
  thr_k = jnp.asarray(thresholds, jnp.float32)
  return (ratio_p[:, None] >= thr_k[None, :]).sum(axis=1).astype(jnp.int32)


@REWARDS.register("da_dler")
def da_dler(batch: types.Rollout, state: tuple, *, group_size: int,
            thresholds: tuple[float, ...] = (0.5,), caps: tuple[int, ...] = (4000, 2000)):
  """Difficulty-Aware DLER (arXiv:2510.15110 §4): the reward part.

  p[g] = share of group g answered correctly (and not cut off) under the rollout cap; the
  group's tier k = #{thresholds ≤ p[g]} picks its cap `caps[k]` (caps ordered hardest →
  easiest); r[i] = I(correct ∧ not cut off ∧ L ≤ caps[k]). Easy prompts thus get a tighter cap
  without starving hard ones.

  Inferred (the paper does not fix the order): roll out under the larger cap, compute p[g],
  then zero easy-group answers above the smaller cap — which makes this a reward, not a sampler
  change. p = 0.5 exactly counts as easy (`>=`; not found in the paper). The paper's caps are
  {2000, 4000} for a 4000-token rollout cap; configs/dler.py scales them to the rollout cap.
  A per-prompt cap schedule across steps (if configured) is a separate budget schedule; this
  reward only needs the rollout cap to be at least `max(caps)`.

  Args:
    batch: the rollout; reads `correct_b`, `truncated_b`, `length_b` [B].
    state: returned unchanged.
    group_size: G (static).
    thresholds: increasing correctness-ratio thresholds d_1 < ... (static).
    caps: len(thresholds) + 1 length caps in tokens, hardest tier first (static).

  Returns:
    (RewardOutput with rewards_b [B] in {0, 1} and group_flags_b [B] = tier, state,
     {"da_dler/easy_frac": share of groups in the top tier, "da_dler/cut_frac"}).
  """
  if len(caps) != len(thresholds) + 1:
    raise ValueError(f"da_dler needs len(thresholds) + 1 caps, got {thresholds} and {caps}")
  ok_b = within_cap_b(batch, None)
  ratio_p = types.to_groups(ok_b.astype(jnp.float32), group_size).mean(axis=1)
  tier_p = difficulty_tier_p(ratio_p, tuple(thresholds))
  tier_b = jnp.repeat(tier_p, group_size)
  cap_b = jnp.asarray(caps, jnp.int32)[tier_b]
  r_b = ok_b & (batch.length_b <= cap_b)
  out = types.make_reward_output(batch, r_b.astype(jnp.float32),
                                 group_flags_b=tier_b.astype(jnp.float32))
  return out, state, {
      "da_dler/easy_frac": (tier_p == len(thresholds)).astype(jnp.float32).mean(),
      "da_dler/cut_frac": (ok_b & ~r_b).astype(jnp.float32).mean()}
