"""Per-token policy-gradient surrogates (quantities to minimise, before aggregation)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.losses.base import POLICY_LOSSES


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout,
             *, group_size: int, eps_low: float = 0.2, eps_high: float = 0.2,
             dual_clip_c: float | None = None, log_ratio_clamp: float = 20.0):
  """PPO clipped surrogate with decoupled bounds (Schulman et al. 2017 Eq. 7; DAPO §3.1).

  ρ = exp(clip(logp − old_logp, ±log_ratio_clamp));
  loss = max(−A·ρ, −A·clip(ρ, 1 − eps_low, 1 + eps_high)) (PPO arXiv:1707.06347, verl
  `compute_policy_loss_vanilla`). With `dual_clip_c` (Ye et al. 2020, verl `clip_ratio_c`, > 1)
  the loss of negative-advantage tokens is capped at −A·c. GRPO/PPO use eps 0.2/0.2,
  DAPO's clip-higher 0.2/0.28.

  Args:
    logp_bt: [B, T] current log-probs of the sampled tokens (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt: unused (per-token loss; the aggregation applies the mask).
    batch: reads `old_logp_bt` [B, T].
    group_size: unused (uniform signature).
    eps_low: lower clip range, ρ ≥ 1 − eps_low.
    eps_high: upper clip range, ρ ≤ 1 + eps_high.
    dual_clip_c: None (off) or the dual-clip constant c > 1.
    log_ratio_clamp: |logp − old_logp| bound before exp (avoids inf ratios).

  Returns:
    (loss_bt [B, T], aux of [B, T]: clip_frac (the clipped branch is active), ratio,
     approx_kl (ρ − 1 − log ρ, the k3 estimate of KL(π_old ‖ π_θ)), and with dual clip
     clip_frac_lower).
  """
  del mask_bt, group_size
  old_logp_bt = jax.lax.stop_gradient(batch.old_logp_bt)
  log_ratio_bt = jnp.clip(logp_bt - old_logp_bt, -log_ratio_clamp, log_ratio_clamp)
  ratio_bt = jnp.exp(log_ratio_bt)
  unclipped_bt = -adv_bt * ratio_bt
  clipped_bt = -adv_bt * jnp.clip(ratio_bt, 1.0 - eps_low, 1.0 + eps_high)
  loss_bt = jnp.maximum(unclipped_bt, clipped_bt)
  aux = {"clip_frac": clipped_bt > unclipped_bt, "ratio": ratio_bt,
         "approx_kl": ratio_bt - 1.0 - log_ratio_bt}
  if dual_clip_c is not None:  # Python value: settled at trace time
    cap_bt = -adv_bt * dual_clip_c
    lower_bt = (adv_bt < 0) & (loss_bt > cap_bt)
    loss_bt = jnp.where(lower_bt, cap_bt, loss_bt)
    aux["clip_frac_lower"] = lower_bt
  return loss_bt, {k: v.astype(loss_bt.dtype) for k, v in aux.items()}
