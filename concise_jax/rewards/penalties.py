"""Fixed-shape length penalties: Yeo et al.'s cosine reward, its linear twin, DAPO soft overlong.

All three are functions of one response's own length against a fixed maximum (no group or
history statistics), so they are the simplest baselines of the length-aware family.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def _cap(batch: types.Rollout, max_len: int | None) -> int:
  """L_max in tokens: the given value, or the rollout's padded width T (the decode cap)."""
  return batch.mask_bt.shape[1] if max_len is None else int(max_len)


def cosine_interp_b(length_b: jax.Array, max_len: int, at_zero: float | jax.Array,
                    at_max: float | jax.Array) -> jax.Array:
  """Yeo et al.'s CosFn: `at_zero` at L = 0 falling (or rising) along a half cosine to `at_max`
  at L = max_len; lengths outside [0, max_len] are clipped.

  CosFn(t, T, η_min, η_max) = η_min + ½(η_max − η_min)(1 + cos(tπ/T)) with η_max = at_zero and
  η_min = at_max (arXiv:2502.03373 §4.2).
  """
  frac_b = jnp.clip(length_b.astype(jnp.float32) / max_len, 0.0, 1.0)
  return at_max + 0.5 * (at_zero - at_max) * (1.0 + jnp.cos(jnp.pi * frac_b))


def linear_interp_b(length_b: jax.Array, max_len: int, at_zero: float | jax.Array,
                    at_max: float | jax.Array) -> jax.Array:
  """Straight line from `at_zero` at L = 0 to `at_max` at L = max_len (lengths clipped)."""
  frac_b = jnp.clip(length_b.astype(jnp.float32) / max_len, 0.0, 1.0)
  return at_zero + (at_max - at_zero) * frac_b


def _endpoint_reward(interp, batch, max_len, correct_short, correct_long, wrong_short,
                     wrong_long, exceed_reward):
  """Shared body of the cosine / linear rewards: pick endpoints by correctness, then interp."""
  cap = _cap(batch, max_len)
  at_zero_b = jnp.where(batch.correct_b, correct_short, wrong_short)
  at_max_b = jnp.where(batch.correct_b, correct_long, wrong_long)
  r_b = interp(batch.length_b, cap, at_zero_b, at_max_b)
  exceed_b = batch.truncated_b | (batch.length_b > cap)
  r_b = jnp.where(exceed_b, exceed_reward, r_b)
  return r_b, exceed_b


@REWARDS.register("cosine_length")
def cosine_length(batch: types.Rollout, state: tuple, *, group_size: int,
                  max_len: int | None = None, correct_short: float = 2.0,
                  correct_long: float = 1.0, wrong_short: float = -10.0,
                  wrong_long: float = 0.0, exceed_reward: float = -10.0):
  """Cosine length-scaling reward (Yeo et al., "Demystifying Long Chain-of-Thought Reasoning
  in LLMs", arXiv:2502.03373 §4.2).

  Correct answers earn `correct_short` (r_0^c) at L = 0, falling along a half cosine to
  `correct_long` (r_L^c) at L = L_max: shorter correct answers are preferred. Wrong answers go
  from `wrong_short` (r_0^w) up to `wrong_long` (r_L^w): a short wrong answer is punished more,
  so the model keeps thinking when it is unsure. A response that hits the cap gets
  `exceed_reward` (r_exceed) whatever its correctness. Defaults are the paper's (2, 1, −10, 0,
  −10; the authors' launch script `section_4.2__..._cosine_repetition_penalty.sh`); the paper's
  optional n-gram repetition penalty is left out (LASER-DE's "repetitive" host need
  could carry it). Correct never scores below wrong at equal length while
  correct_long ≥ wrong_long and
  correct_short ≥ wrong_short.

  Args:
    batch: the rollout; reads `correct_b`, `length_b`, `truncated_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    max_len: L_max (T in the paper) in tokens; None = the rollout cap (padded width).
    correct_short, correct_long, wrong_short, wrong_long: the four endpoint rewards.
    exceed_reward: reward of a response cut off at the cap (or longer than `max_len`).

  Returns:
    (RewardOutput with rewards_b [B], state, {"cosine_length/exceed_frac"}).
  """
  del group_size
  r_b, exceed_b = _endpoint_reward(cosine_interp_b, batch, max_len, correct_short,
                                   correct_long, wrong_short, wrong_long, exceed_reward)
  return types.make_reward_output(batch, r_b), state, {
      "cosine_length/exceed_frac": exceed_b.astype(jnp.float32).mean()}


@REWARDS.register("linear_length")
def linear_length(batch: types.Rollout, state: tuple, *, group_size: int,
                  max_len: int | None = None, correct_short: float = 2.0,
                  correct_long: float = 1.0, wrong_short: float = -10.0,
                  wrong_long: float = 0.0, exceed_reward: float = -10.0):
  """Plain linear length reward: Yeo et al.'s endpoints joined by a straight line.

  r = at_zero + (at_max − at_zero) · min(L, L_max) / L_max with the endpoints of
  `cosine_length` (correct: 2 → 1, wrong: −10 → 0, cut off: −10).

  Inferred: no paper defines this plain linear length penalty; it is the linear twin of
  Yeo et al.'s cosine reward (arXiv:2502.03373 §4.2) with the same knobs and defaults; the two
  then differ only in the curve's shape (the cosine is flat near 0 and near L_max, the line
  has the same slope everywhere), which makes them a clean ablation pair.

  Args:
    batch: the rollout; reads `correct_b`, `length_b`, `truncated_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    max_len: L_max in tokens; None = the rollout cap (padded width).
    correct_short, correct_long, wrong_short, wrong_long: the four endpoint rewards.
    exceed_reward: reward of a response cut off at the cap (or longer than `max_len`).

  Returns:
    (RewardOutput with rewards_b [B], state, {"linear_length/exceed_frac"}).
  """
  del group_size
  r_b, exceed_b = _endpoint_reward(linear_interp_b, batch, max_len, correct_short,
                                   correct_long, wrong_short, wrong_long, exceed_reward)
  return types.make_reward_output(batch, r_b), state, {
      "linear_length/exceed_frac": exceed_b.astype(jnp.float32).mean()}


def soft_overlong_term_b(length_b: jax.Array, max_len: int, buffer: int) -> jax.Array:
  """DAPO's R_length in [−1, 0]: 0 up to L_max − L_cache, then linear down to −1 at L_max.

  R = clip(((L_max − L_cache) − L) / L_cache, −1, 0); beyond L_max it stays −1.
  """
  over_b = (max_len - buffer) - length_b.astype(jnp.float32)
  return jnp.clip(over_b / buffer, -1.0, 0.0)


@REWARDS.register("soft_overlong")
def soft_overlong(batch: types.Rollout, state: tuple, *, group_size: int,
                  max_len: int | None = None, buffer: int = 4096,
                  penalty_factor: float = 1.0):
  """DAPO soft overlong punishment (Yu et al., arXiv:2503.14476 §3.4 Eq. 13).

  r = I(correct) + penalty_factor · R_length(L), R_length from `soft_overlong_term_b`: a
  graded penalty over the last `buffer` (L_cache) tokens before the hard cap instead of a
  cliff, so a nearly-too-long correct answer is not treated like a cut-off one. The paper uses
  L_max = 20480 = 16384 + L_cache 4096 with L_max the decode cap (here `max_len=None`);
  `penalty_factor` is verl's knob (default 1). Past L_max we keep the paper's −1; verl's form
  min(−(L − (L_max − L_cache))/L_cache, 0) has no lower clip and keeps falling. The two differ
  only when `max_len` is set below the rollout cap.

  Args:
    batch: the rollout; reads `correct_b`, `length_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    max_len: L_max in tokens; None = the rollout cap (padded width).
    buffer: L_cache in tokens (> 0).
    penalty_factor: weight of the length term.

  Returns:
    (RewardOutput with rewards_b [B], state, {"soft_overlong/penalised_frac"}).
  """
  del group_size
  if buffer <= 0:
    raise ValueError(f"soft_overlong needs buffer > 0, got {buffer}")
  term_b = soft_overlong_term_b(batch.length_b, _cap(batch, max_len), buffer)
  r_b = batch.correct_b.astype(jnp.float32) + penalty_factor * term_b
  return types.make_reward_output(batch, r_b), state, {
      "soft_overlong/penalised_frac": (term_b < 0).astype(jnp.float32).mean()}
