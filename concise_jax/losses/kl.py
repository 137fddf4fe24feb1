"""Per-token KL estimators on the sampled token (Schulman 2020 k1/k2/k3; verl `kl_penalty`)."""
import jax
import jax.numpy as jnp

from concise_jax.losses.base import KL_ESTIMATORS


@KL_ESTIMATORS.register("k3")
def k3(logp_bt: jax.Array, ref_logp_bt: jax.Array, *, log_ratio_clamp: float = 20.0,
       value_clamp: float = 10.0) -> jax.Array:
  """Schulman's k3 estimator of KL(π_θ ‖ π_ref), GRPO's KL term (DeepSeekMath Eq. 4).

  With d = logp − ref: k3 = exp(−d) + d − 1 = π_ref/π_θ − log(π_ref/π_θ) − 1 ≥ 0, unbiased for
  the KL when tokens are sampled from π_θ. As verl's `low_var_kl`: −d is clamped to
  ±log_ratio_clamp before exp and the value to ±value_clamp (both zero the gradient outside).
  verl's "low_var_kl" is exactly this function, so no alias is registered under that name.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    ref_logp_bt: [B, T] reference-policy log-probs (no gradient).
    log_ratio_clamp: bound on |ref − logp| before exp.
    value_clamp: bound on the returned value.

  Returns:
    [B, T] per-token KL estimate.
  """
  neg_d_bt = jnp.clip(jax.lax.stop_gradient(ref_logp_bt) - logp_bt,
                      -log_ratio_clamp, log_ratio_clamp)
  return jnp.clip(jnp.exp(neg_d_bt) - neg_d_bt - 1.0, -value_clamp, value_clamp)


@KL_ESTIMATORS.register("k1")
def k1(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  """k1 = logp − ref (verl `kl`/`k1`; Schulman 2020): unbiased value of KL(π_θ ‖ π_ref) on
  samples of π_θ, but its gradient ∇logp has zero mean on-policy — it only regularises through
  the sampling, so prefer k2/k3 as a loss term.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    ref_logp_bt: [B, T] reference log-probs (no gradient).

  Returns:
    [B, T] per-token estimate (may be negative).
  """
  return logp_bt - jax.lax.stop_gradient(ref_logp_bt)


@KL_ESTIMATORS.register("k2")
def k2(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  """k2 = ½ (logp − ref)² (verl `mse`/`k2`): biased value, but on-policy its gradient
  (logp − ref)·∇logp equals the true reverse-KL gradient in expectation; KDRL's recommended
  estimator (arXiv:2506.02208).

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    ref_logp_bt: [B, T] reference log-probs (no gradient).

  Returns:
    [B, T] per-token estimate (≥ 0).
  """
  return 0.5 * jnp.square(logp_bt - jax.lax.stop_gradient(ref_logp_bt))


@KL_ESTIMATORS.register("abs")
def abs_kl(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  """|logp − ref| (verl `abs`): a non-negative distance, not an unbiased KL estimate; its
  gradient sign(logp − ref)·∇logp pulls every token toward the reference with unit weight.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    ref_logp_bt: [B, T] reference log-probs (no gradient).

  Returns:
    [B, T] per-token estimate (≥ 0).
  """
  d_bt = logp_bt - jax.lax.stop_gradient(ref_logp_bt)
  # sign(d)·d, not jnp.abs: jax takes |x|' = 1 at 0, which would push every token of a policy
  # still equal to its reference (step 0, LoRA) up; sign(d)·d has gradient 0 there.
  return jnp.sign(d_bt) * d_bt
