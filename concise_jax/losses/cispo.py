"""CISPO: clip the (stop-gradient) importance weight, never the token's gradient."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.losses.base import POLICY_LOSSES


def token_ratio_bt(logp_bt: jax.Array, batch: types.Rollout,
                   log_ratio_clamp: float) -> jax.Array:
  """ρ = exp(clip(logp − old_logp, ±log_ratio_clamp)), stop-gradient (an IS weight)."""
  d_bt = jax.lax.stop_gradient(logp_bt - batch.old_logp_bt)
  return jnp.exp(jnp.clip(d_bt, -log_ratio_clamp, log_ratio_clamp))


@POLICY_LOSSES.register("cispo")
def cispo(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout, *,
          group_size: int, eps_low: float = 1.0, eps_high: float = 0.28,
          cap_mode: str = "band", abs_cap: float = 5.0, log_ratio_clamp: float = 20.0):
  """CISPO (MiniMax-M1, arXiv:2506.13585 §3.1).

  loss = −sg(r̂)·A·logp, r̂ = clip(ρ, 1 − eps_low, 1 + eps_high) ("band", the paper and verl):
  PPO's clip zeroes the gradient of rare "fork" tokens whose ratio left the band; CISPO keeps
  every token's REINFORCE gradient and only bounds its weight. "abs_max" is TRL's form,
  r̂ = min(ρ, abs_cap) with an ABSOLUTE cap on ρ and no lower bound (ScaleRL: 5.0).
  eps_low = 1.0 switches the lower clip off (the paper imposes no lower bound and tunes only
  the upper one). Inferred: eps_high = 0.28, the default of Trinity-RFT's CISPO loss (and DAPO's
  clip-higher); MiniMax's own value was not found.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt, group_size: unused (uniform signature).
    batch: reads `old_logp_bt`.
    eps_low, eps_high: band of r̂ in "band" mode.
    cap_mode: "band" (paper / verl) or "abs_max" (TRL).
    abs_cap: absolute cap on ρ in "abs_max" mode.
    log_ratio_clamp: |logp − old| bound before exp.

  Returns:
    (loss_bt [B, T], aux: is_weight, clip_frac (the weight was capped)).
  """
  del mask_bt, group_size
  rho_bt = token_ratio_bt(logp_bt, batch, log_ratio_clamp)
  if cap_mode == "band":
    w_bt = jnp.clip(rho_bt, 1.0 - eps_low, 1.0 + eps_high)
  elif cap_mode == "abs_max":
    w_bt = jnp.minimum(rho_bt, abs_cap)
  else:
    raise ValueError(f"cispo cap_mode {cap_mode!r}; valid choices: band, abs_max")
  loss_bt = -w_bt * adv_bt * logp_bt
  return loss_bt, {"is_weight": w_bt, "clip_frac": (w_bt != rho_bt).astype(loss_bt.dtype)}
