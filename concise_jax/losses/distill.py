"""RL + divergence-to-another-policy losses: KDRL (teacher, reverse KL) and DPH-RL (initial
policy, mass-covering f-divergence on near-perfect prompts).

Both read `Rollout.teacher_logp_bt`, the log-probs of the SAMPLED tokens under the teacher
(`config.teacher.model`; "init" = the initial policy), filled by the update. They are
sampled-token estimators: the full-vocabulary forms (Σ_v over the teacher's distribution) are
not implemented.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.losses.base import KL_ESTIMATORS, POLICY_LOSSES
from concise_jax.losses.policy import ppo_clip


def _teacher_logp_bt(batch: types.Rollout, name: str) -> jax.Array:
  if batch.teacher_logp_bt is None:
    raise ValueError(f"policy loss {name!r} needs Rollout.teacher_logp_bt "
                     "(set config.teacher.model)")
  return jax.lax.stop_gradient(batch.teacher_logp_bt)


@POLICY_LOSSES.register("kdrl")
def kdrl(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout, *,
         group_size: int, kd_coef: float = 5e-3, estimator: str = "k2",
         mask_correct: bool = True, eps_low: float = 0.2, eps_high: float = 0.2,
         dual_clip_c: float | None = None, log_ratio_clamp: float = 20.0):
  """KDRL (Xu et al., arXiv:2506.02208): GRPO + β·reverse KL to a teacher.

  loss = ppo_clip(ρ, A) + kd_coef · gate_i · k(logp, teacher_logp), k a registered KL estimator
  on the student's own samples (on-policy distillation; k2 recommended: gradient-unbiased
  reverse KL). "Reward-guided KD": with `mask_correct` the KD term is dropped on responses that
  are already correct (raw `correct_b`), where it would only pull a right answer toward the
  teacher's. Inferred: β is constant (the paper anneals 5e-3 → 1e-3; no schedule here) and the
  mask rule beyond "correct → no KD" was not found.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt: [B, T] loss mask (passed to the surrogate).
    batch: reads `old_logp_bt`, `teacher_logp_bt`, `correct_b`.
    group_size: G (static).
    kd_coef: β of the KD term.
    estimator: KL_ESTIMATORS name ("k1", "k2", "k3"), default kwargs.
    mask_correct: no KD on correct responses.
    eps_low, eps_high, dual_clip_c, log_ratio_clamp: the PPO surrogate's (`ppo_clip`).

  Returns:
    (loss_bt [B, T], aux: ppo_clip's plus kd (the per-token KD estimate)).
  """
  pg_bt, aux = ppo_clip(logp_bt, adv_bt, mask_bt, batch, group_size=group_size,
                        eps_low=eps_low, eps_high=eps_high, dual_clip_c=dual_clip_c,
                        log_ratio_clamp=log_ratio_clamp)
  kd_bt = KL_ESTIMATORS.get(estimator)(logp_bt, _teacher_logp_bt(batch, "kdrl"))
  gate_b1 = (1.0 - batch.correct_b.astype(jnp.float32) if mask_correct
             else jnp.ones(batch.correct_b.shape, jnp.float32))[:, None]
  aux["kd"] = jax.lax.stop_gradient(kd_bt)
  return pg_bt + kd_coef * gate_b1 * kd_bt, aux


def f_divergence_bt(log_u_bt: jax.Array, divergence: str) -> jax.Array:
  """f(u) at u = π_θ/π_0 given log u: "fwd_kl" f = −log u; "js" f = ½[u log u − (u+1)
  log((u+1)/2)] (both convex, f(1) = 0; arXiv:2509.07430)."""
  if divergence == "fwd_kl":
    return -log_u_bt
  if divergence == "js":
    u_bt = jnp.exp(log_u_bt)
    return 0.5 * (u_bt * log_u_bt - (u_bt + 1.0) * (jax.nn.softplus(log_u_bt) - jnp.log(2.0)))
  raise ValueError(f"dph_rl divergence {divergence!r}; valid choices: fwd_kl, js")


@POLICY_LOSSES.register("dph_rl")
def dph_rl(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout, *,
           group_size: int, divergence: str = "fwd_kl", coef: float = 0.1,
           pef_threshold: float = 1.0, is_cap: float | None = 5.0, eps_low: float = 0.2,
           eps_high: float = 0.2, dual_clip_c: float | None = None,
           log_ratio_clamp: float = 20.0):
  """DPH-RL (Li et al., arXiv:2509.07430): rehearsal with a mass-covering
  f-divergence to the initial policy π_0, which keeps Pass@k from collapsing.

  Groups the policy already solves near-perfectly (pass rate ≥ pef_threshold: D_pef) get only
  coef · D_f(π_θ ‖ π_0) = coef · E_{x~π_0}[f(π_θ/π_0)]; the rest (D_exp) only the PPO surrogate,
  no KL. Per token: u = exp(logp − logp_0) and the term w·f(u).
  Inferred (paper details not found): token-level u; the samples are the policy's own
  (the paper stores π_0 samples offline), so w = sg(min(π_0/π_old, is_cap)) re-weights them
  toward π_0 (is_cap None: w = 1); coef η = 0.1; pef_threshold 1.0 (all G correct).

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt: [B, T] loss mask (passed to the surrogate).
    batch: reads `old_logp_bt`, `teacher_logp_bt` (π_0), `correct_b`.
    group_size: G (static): the pass rate is per group.
    divergence: "fwd_kl" (KL(π_0 ‖ π_θ)) or "js".
    coef: η of the divergence.
    pef_threshold: group pass rate at or above which a group is rehearsal-only.
    is_cap: cap of the π_0/π_old importance weight; None = no re-weighting.
    eps_low, eps_high, dual_clip_c, log_ratio_clamp: the PPO surrogate's (`ppo_clip`).

  Returns:
    (loss_bt [B, T], aux: ppo_clip's plus divergence, pef (sample is in D_pef)).
  """
  pg_bt, aux = ppo_clip(logp_bt, adv_bt, mask_bt, batch, group_size=group_size,
                        eps_low=eps_low, eps_high=eps_high, dual_clip_c=dual_clip_c,
                        log_ratio_clamp=log_ratio_clamp)
  logp0_bt = _teacher_logp_bt(batch, "dph_rl")
  log_u_bt = jnp.clip(logp_bt - logp0_bt, -log_ratio_clamp, log_ratio_clamp)
  if is_cap is None:
    w_bt = jnp.ones_like(logp_bt)
  else:
    log_w_bt = jnp.clip(logp0_bt - jax.lax.stop_gradient(batch.old_logp_bt), -log_ratio_clamp,
                        log_ratio_clamp)
    w_bt = jnp.minimum(jnp.exp(log_w_bt), is_cap)
  div_bt = w_bt * f_divergence_bt(log_u_bt, divergence)
  pass_p = types.to_groups(batch.correct_b.astype(jnp.float32), group_size).mean(axis=1)
  pef_b1 = jnp.repeat(pass_p >= pef_threshold, group_size)[:, None]
  aux["divergence"] = jax.lax.stop_gradient(div_bt)
  aux["pef"] = jnp.broadcast_to(pef_b1, logp_bt.shape).astype(logp_bt.dtype)
  return jnp.where(pef_b1, coef * div_bt, pg_bt), aux
