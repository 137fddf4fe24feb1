"""DISPO: CISPO-style REINFORCE with four IS bounds, split by correctness and direction."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.losses.base import POLICY_LOSSES
from concise_jax.losses.cispo import token_ratio_bt


@POLICY_LOSSES.register("dispo")
def dispo(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout, *,
          group_size: int, eps_low_pos: float = 0.2, eps_high_pos: float = 0.28,
          eps_low_neg: float = 0.2, eps_high_neg: float = 0.28, outside_band: str = "mask",
          log_ratio_clamp: float = 20.0):
  """DISPO (Karaman et al., arXiv:2602.00983).

  The four regimes (correct/incorrect × weight up/down) need separate bounds: a loose up-clip on
  correct answers raises entropy, a tight down-clip on wrong answers collapses length, etc.
  band_i = (1 − eps_low_pos, 1 + eps_high_pos) if o_i is correct (raw `correct_b`) else
  (1 − eps_low_neg, 1 + eps_high_neg); loss = −g·sg(w)·A·logp with
    "mask": w = ρ, g = 0 outside the band (no gradient outside the trust region — the reading
            of the abstract's criticism of CISPO), or
    "clip": w = clip(ρ, band), g = 1 (CISPO with four bounds).
  Inferred: the exact form and all four defaults (not found; DAPO's 0.2 / 0.28 here).

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt, group_size: unused (uniform signature).
    batch: reads `old_logp_bt`, `correct_b`.
    eps_low_pos, eps_high_pos: band of correct responses.
    eps_low_neg, eps_high_neg: band of incorrect responses.
    outside_band: "mask" or "clip" (see above).
    log_ratio_clamp: |logp − old| bound before exp.

  Returns:
    (loss_bt [B, T], aux: is_weight, clip_frac (ρ outside its band)).
  """
  del mask_bt, group_size
  rho_bt = token_ratio_bt(logp_bt, batch, log_ratio_clamp)
  correct_b1 = batch.correct_b.astype(bool)[:, None]
  lo_b1 = jnp.where(correct_b1, 1.0 - eps_low_pos, 1.0 - eps_low_neg)
  hi_b1 = jnp.where(correct_b1, 1.0 + eps_high_pos, 1.0 + eps_high_neg)
  outside_bt = (rho_bt < lo_b1) | (rho_bt > hi_b1)
  if outside_band == "mask":
    w_bt = jnp.where(outside_bt, 0.0, rho_bt)
  elif outside_band == "clip":
    w_bt = jnp.clip(rho_bt, lo_b1, hi_b1)
  else:
    raise ValueError(f"dispo outside_band {outside_band!r}; valid choices: mask, clip")
  loss_bt = -w_bt * adv_bt * logp_bt
  return loss_bt, {"is_weight": w_bt, "clip_frac": outside_bt.astype(loss_bt.dtype)}
