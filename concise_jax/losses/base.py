"""The loss registries and the one signature of each category.

Policy losses (per token, before aggregation):

    policy_loss(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: Rollout, *,
                group_size: int, **kwargs) -> tuple[jax.Array, dict[str, jax.Array]]

  `logp_bt` [B, T] are the current policy's log-probs of the sampled tokens (differentiable);
  `batch.old_logp_bt` the sampling policy's. `mask_bt` is the loss mask (sequence-level ratios
  such as GSPO's need it; per-token losses ignore it). Returns `loss_bt` [B, T] (the quantity to
  minimise, before aggregation) and `aux` — a dict of [B, T] per-token diagnostics (clip
  indicators, ratios) that `compute_loss` reports as masked token means.

Aggregations (loss_bt → scalar):

    aggregate(loss_bt: jax.Array, mask_bt: jax.Array, **kwargs) -> jax.Array   # []

  Numerator and denominator use the same mask, and masked entries never leak (not even inf/NaN).
  Constant divisors (Dr. GRPO's L_max) are kwargs from the config, never read off the batch.

KL estimators (per token, sampled-token estimate of KL(π_θ ‖ π_ref)):

    kl_estimator(logp_bt: jax.Array, ref_logp_bt: jax.Array, **kwargs) -> jax.Array   # [B, T]

All kwargs (and `group_size`) are bound with `functools.partial` outside `jit`.
"""
from concise_jax.registry import Registry

POLICY_LOSSES = Registry("policy loss")
AGGREGATIONS = Registry("loss aggregation")
KL_ESTIMATORS = Registry("KL estimator")
