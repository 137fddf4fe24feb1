"""DRPO's decoupled objective expressed as per-sample weights (arXiv:2510.04474).

DRPO replaces the PPO surrogate with, per question q that has both correct and wrong answers,

    J_q = Σ_{i∈Pos} ŵ_i s_i − τ log Σ_{j∈Neg} exp(s_j / τ),     obj = (1/Q) Σ_q J_q,

where s_i = (1/L_i) Σ_t log π_θ(o_i,t) and ŵ ∝ exp((1 − L/L_pad)/λ) over the positives. Its
gradient is Σ_i a_i ∇s_i with a_i = ŵ_i on positives and a_j = −softmax_Neg(s/τ)_j on
negatives. The a_i sum to zero within each group, so they pass through the mean-centred
`dr_grpo` advantage unchanged, and the PPO surrogate with `seq_mean_token_mean` aggregation
(per-sequence token mean, then mean over the B = Q·G sequences) has gradient −(1/B) Σ_i A_i ∇s_i
at ratio 1. Emitting r_i = G·a_i therefore reproduces DRPO's gradient exactly, with no new
loss: this module is the whole method given `configs/drpo.py`'s choices.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def masked_softmax_pg(logits_pg: jax.Array, mask_pg: jax.Array) -> jax.Array:
  """Softmax over the masked entries of each group; 0 off the mask and in empty groups."""
  neg_inf = jnp.float32(-jnp.inf)
  masked_pg = jnp.where(mask_pg, logits_pg, neg_inf)
  max_p1 = jnp.max(masked_pg, axis=1, keepdims=True)
  exp_pg = jnp.where(mask_pg, jnp.exp(logits_pg - jnp.where(jnp.isfinite(max_p1), max_p1, 0.0)),
                     0.0)
  den_p1 = exp_pg.sum(axis=1, keepdims=True)
  return exp_pg / jnp.where(den_p1 > 0, den_p1, 1.0)


def seq_mean_logp_b(logp_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """s_i: length-normalised log-likelihood Σ_t m·logp / L_i (0 for an empty response)."""
  len_b = mask_bt.sum(axis=1)
  return jnp.where(mask_bt > 0, logp_bt, 0.0).sum(axis=1) / jnp.maximum(len_b, 1.0)


def drpo_weights_b(batch: types.Rollout, group_size: int, *, lam: float, tau: float,
                   max_len: int) -> tuple[jax.Array, jax.Array]:
  """(a [B] DRPO gradient weights, valid [P] groups with both correct and wrong answers)."""
  correct_pg = types.to_groups(batch.correct_b, group_size)
  valid_p = correct_pg.any(axis=1) & (~correct_pg).any(axis=1)
  ell_pg = types.to_groups(batch.length_b.astype(jnp.float32), group_size) / max_len
  w_pg = masked_softmax_pg((1.0 - ell_pg) / lam, correct_pg)
  s_pg = types.to_groups(seq_mean_logp_b(batch.old_logp_bt, batch.mask_bt), group_size)
  q_pg = masked_softmax_pg(s_pg / tau, ~correct_pg)
  a_pg = jnp.where(valid_p[:, None], w_pg - q_pg, 0.0)
  return types.from_groups(a_pg), valid_p


@REWARDS.register("drpo")
def drpo(batch: types.Rollout, state: tuple, *, group_size: int,
         lam: float = 0.1, tau: float = 10.0, max_len: int | None = None):
  """DRPO (Li, Chen, Lin, Yang, "DRPO: Efficient Reasoning via Decoupled Reward Policy
  Optimization", arXiv:2510.04474) as gradient weights in `rewards_b`.

  r_i = G·ŵ_i for a correct answer (ŵ = softmax over the group's correct answers of
  (1 − L/L_pad)/λ: shorter correct answers weigh more, but every one stays positive), and
  r_j = −G·softmax(s/τ)_j for a wrong one (the likelier wrong answers are pushed down harder);
  0 in groups that are all correct or all wrong. Use with advantage `dr_grpo`, loss `ppo_clip`,
  aggregation `seq_mean_token_mean` (module docstring: the gradient then equals DRPO's).

  Inferred / approximated: the negatives' softmax uses the SAMPLING policy's log-probs
  (`old_logp_bt`, i.e. at the rollout temperature, while the update differentiates the
  untempered policy), exact for the first (on-policy) minibatch of the one PPO epoch DRPO runs
  at temperature 1 and stale after; only the wrong answers' relative weights are affected;
  L_pad = the padded response width (inferred), i.e. the
  rollout cap when `max_len` is None; DRPO's KL hinge term β·max(KL − δ, 0) cannot be expressed
  as a reward and is left to the PPO clip; empty rows do not count in the divisor B'.

  Args:
    batch: the rollout; reads `correct_b`, `length_b`, `mask_bt`, `old_logp_bt`.
    state: returned unchanged.
    group_size: G (static).
    lam: λ, temperature of the length weights (→ ∞ gives uniform weights, i.e. DisCO).
    tau: τ, temperature of the log-sum-exp over wrong answers.
    max_len: L_pad in tokens; None = the rollout's padded width T.

  Returns:
    (RewardOutput with rewards_b [B] (zero-sum per group), state,
     {"drpo/valid_frac": share of groups with both correct and wrong answers}).
  """
  pad = batch.mask_bt.shape[1] if max_len is None else int(max_len)
  a_b, valid_p = drpo_weights_b(batch, group_size, lam=lam, tau=tau, max_len=pad)
  return types.make_reward_output(batch, group_size * a_b), state, {
      "drpo/valid_frac": valid_p.astype(jnp.float32).mean()}
