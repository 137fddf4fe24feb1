"""CEEH — "Compress the Easy, Explore the Hard" (Luo et al., arXiv:2602.22642).

Length-only optimisation collapses entropy and stops exploration on hard prompts. CEEH rewards
correct answers that beat a slowly-updated per-prompt "shortest correct length", and adds an
entropy term only for the prompts that are currently hard (group accuracy at or below the
dataset's mean accuracy EMA).

State (`init_ceeh`, the reward's own, checkpointed): `acc_ema_n` (−1 = unseen), `len_ref_n`
(0 = no history) and `count_n` (times a prompt was scored; marks seen prompts). Host need:
the sampler's token entropy, in the entropy-advantage mode only.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS

ENTROPY_MODES = ("ea", "me", "none")
SCHEDULES = ("constant", "linear", "cosine")


def init_ceeh(num_prompts: int, **options) -> dict:
  """Fresh per-prompt tables: no len_ref (0), accuracy EMA unseen (−1), never scored (0)."""
  del options
  return {"len_ref_n": jnp.zeros((num_prompts,), jnp.float32),
          "acc_ema_n": jnp.full((num_prompts,), -1.0, jnp.float32),
          "count_n": jnp.zeros((num_prompts,), jnp.float32)}


def schedule_t(num_tokens: int, schedule: str) -> jax.Array:
  """k_t over token positions t = 0..T−1: 1 | 1 − t/T | ½(1 + cos(πt/T)) (arXiv:2602.22642).

  Inferred: T is the padded completion length (the decode cap), not each response's length.
  """
  frac_t = jnp.arange(num_tokens, dtype=jnp.float32) / num_tokens
  if schedule == "constant":
    return jnp.ones((num_tokens,), jnp.float32)
  if schedule == "linear":
    return 1.0 - frac_t
  if schedule == "cosine":
    return 0.5 * (1.0 + jnp.cos(jnp.pi * frac_t))
  raise ValueError(f"unknown CEEH schedule {schedule!r}; valid choices: {', '.join(SCHEDULES)}")


def length_term_b(batch: types.Rollout, state: dict, p_b: jax.Array,
                  scale: float, floor: float) -> jax.Array:
  """lr[i] = max(floor, s·(len_ref − L)/len_ref) for correct answers of prompts that did not
  get worse (p[g] ≥ acc_ema[n]) and have a history (len_ref > 0); 0 otherwise."""
  ref_b = state["len_ref_n"][batch.prompt_index_b]
  ema_b = state["acc_ema_n"][batch.prompt_index_b]
  safe_ref_b = jnp.where(ref_b > 0, ref_b, 1.0)
  lr_b = jnp.maximum(floor, scale * (ref_b - batch.length_b) / safe_ref_b)
  on_b = batch.correct_b & (p_b >= ema_b) & (ref_b > 0)
  return jnp.where(on_b, lr_b, 0.0)


def update_state(batch: types.Rollout, state: dict, group_size: int, *,
                 len_rate_down: float, len_rate_up: float, acc_rate_up: float,
                 acc_rate_down: float) -> dict:
  """Per-prompt EMA updates AFTER scoring, one row per group of the batch.

  len_ref ← m on first history, else a·m + (1−a)·len_ref with a = len_rate_down if m < len_ref
  else len_rate_up, m = shortest correct length of the group (no update without a correct
  answer). acc_ema ← p if acc_ema ≤ 0, else b·p + (1−b)·acc_ema with b = acc_rate_up if
  p > acc_ema else acc_rate_down. Inferred: a group without a correct answer leaves len_ref
  alone; a prompt appears in at most one group per batch (else one group's update wins).
  """
  idx_p = batch.prompt_index_b[::group_size]
  correct_pg = types.to_groups(batch.correct_b, group_size)
  p_p = correct_pg.astype(jnp.float32).mean(axis=1)
  len_pg = types.to_groups(batch.length_b.astype(jnp.float32), group_size)
  m_p = jnp.where(correct_pg, len_pg, jnp.inf).min(axis=1)
  ref_p = state["len_ref_n"][idx_p]
  a_p = jnp.where(m_p < ref_p, len_rate_down, len_rate_up)
  new_ref_p = jnp.where(ref_p == 0, m_p, a_p * m_p + (1.0 - a_p) * ref_p)
  new_ref_p = jnp.where(jnp.isfinite(m_p), new_ref_p, ref_p)
  ema_p = state["acc_ema_n"][idx_p]
  b_p = jnp.where(p_p > ema_p, acc_rate_up, acc_rate_down)
  new_ema_p = jnp.where(ema_p <= 0, p_p, b_p * p_p + (1.0 - b_p) * ema_p)
  return {"len_ref_n": state["len_ref_n"].at[idx_p].set(new_ref_p),
          "acc_ema_n": state["acc_ema_n"].at[idx_p].set(new_ema_p),
          "count_n": state["count_n"].at[idx_p].add(1.0)}


def entropy_fields(batch: types.Rollout, hard_b: jax.Array, *, mode: str, schedule: str,
                   alpha_e: float, kappa: float, me_factor: float) -> dict:
  """The RewardOutput fields of CEEH's selective entropy term (none in mode "none").

  EA: A'[i,t] = A + k_t·hard·min(α_e·H[i,t], |A|/κ), handed over as a bonus k_t·hard·α_e·H and
  an |A|-relative cap k_t·hard/κ (`types.add_advantage_bonus`; equal because k_t·hard ≥ 0).
  ME: the loss's entropy bonus (coefficient c = config.loss.entropy_coef) gets the per-token
  weight k_t·(1 + hard·(F − 1)).
  Inferred: H is the sampling policy's entropy (`Rollout.features["entropy"]`); the paper uses the
  current policy's, which is the same distribution on the first optimizer step of an update.
  """
  if mode not in ENTROPY_MODES:
    raise ValueError(f"unknown CEEH entropy_mode {mode!r}; valid: {', '.join(ENTROPY_MODES)}")
  if mode == "none":
    return {}
  k_1t = schedule_t(batch.mask_bt.shape[1], schedule)[None, :]
  hard_b1 = hard_b.astype(jnp.float32)[:, None]
  if mode == "me":
    return {"entropy_weight_bt": k_1t * (1.0 + hard_b1 * (me_factor - 1.0)) * batch.mask_bt}
  entropy_bt = types.feature(batch, "entropy", "CEEH entropy_mode='ea'")
  gate_bt = k_1t * hard_b1 * batch.mask_bt
  return {"adv_bonus_bt": gate_bt * alpha_e * jax.lax.stop_gradient(entropy_bt),
          "adv_bonus_cap_bt": gate_bt / kappa}


@REWARDS.register("ceeh", init=init_ceeh, needs=("entropy if entropy_mode=ea",))
def ceeh(batch: types.Rollout, state: dict, *, group_size: int,
         length_scale: float = 0.1, length_floor: float = -0.9, len_rate_down: float = 0.2,
         len_rate_up: float = 0.05, acc_rate_up: float = 0.2, acc_rate_down: float = 0.05,
         entropy_mode: str = "ea", schedule: str = "constant", alpha_e: float = 0.4,
         kappa: float = 2.0, me_factor: float = 5.0):
  """CEEH reward, state update and hard-prompt entropy term (arXiv:2602.22642).

  hard[g] = I(p[g] ≤ mean(acc_ema)) over the whole table (unseen prompts count as −1), taken
  before the update; r[i] = I(correct[i]) + lr[i] (`length_term_b`); then `update_state`.
  Pair with the mean-centred advantage without std (`dr_grpo`), as the paper does.

  Args:
    batch: reads correct_b, length_b, prompt_index_b, mask_bt (+ features["entropy"] in EA mode).
    state: its tables (`init_ceeh`); read, then updated by `update_state`.
    group_size: G (static).
    length_scale: s (train.sh 0.1; the yaml default is 0.5).
    length_floor: lower bound of the length term (−0.9).
    len_rate_down, len_rate_up: EMA rate of len_ref when the new minimum is shorter / longer.
    acc_rate_up, acc_rate_down: EMA rate of acc_ema when accuracy rises / falls.
    entropy_mode: "ea" (entropy advantage, default), "me" (max-entropy loss) or "none".
    schedule: k_t, "constant" (EA default) | "linear" | "cosine" (ME default).
    alpha_e, kappa: EA scale of H and divisor of the |A| cap (0.4, 2.0).
    me_factor: F, ME up-weighting of hard prompts (5).

  Returns:
    (RewardOutput with rewards_b, group_flags_b = hard and the entropy fields, new state,
     metrics: ceeh/hard_frac, ceeh/length_term, ceeh/acc_ema_mean).
  """
  correct_f = batch.correct_b.astype(jnp.float32)
  p_b = jnp.repeat(types.to_groups(correct_f, group_size).mean(axis=1), group_size)
  hard_b = p_b <= state["acc_ema_n"].mean()
  lr_b = length_term_b(batch, state, p_b, length_scale, length_floor)
  out = types.make_reward_output(
      batch, correct_f + lr_b, group_flags_b=hard_b.astype(jnp.float32),
      **entropy_fields(batch, hard_b, mode=entropy_mode, schedule=schedule, alpha_e=alpha_e,
                       kappa=kappa, me_factor=me_factor))
  new_state = update_state(batch, state, group_size, len_rate_down=len_rate_down,
                           len_rate_up=len_rate_up, acc_rate_up=acc_rate_up,
                           acc_rate_down=acc_rate_down)
  return out, new_state, {"ceeh/hard_frac": hard_b.astype(jnp.float32).mean(),
                          "ceeh/length_term": lr_b.mean(),
                          "ceeh/acc_ema_mean": state["acc_ema_n"].mean()}
