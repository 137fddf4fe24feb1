"""DRPO as gradient weights: hand values, edge cases, and the gradient against the formula."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import advantages, losses, testing, types
from concise_jax.rewards import REWARDS
from configs import common

STATE = ()   # stateless rewards


@functools.cache
def _jitted(group_size, overrides=()):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get("drpo"), group_size=group_size, **kwargs))


def _run(batch, group_size, **overrides):
  return _jitted(group_size, tuple(sorted(overrides.items())))(batch, STATE)


def _logp_rows(rows, t):
  """[B, T] log-probs with a constant value per row (s_i = that value)."""
  return np.repeat(np.asarray(rows, np.float32)[:, None], t, axis=1)


def test_drpo_golden():
  # T = 10 = L_pad. correct = [1, 1, 0, 0], L = [2, 6, 4, 9], s = [−.5, −.5, −1, −2].
  # positives: (1 − L/10)/λ = [8, 4] → softmax = [.982014, .017986]
  # negatives: s/τ = [−.1, −.2] → softmax = [.524979, .475021]
  # r = G·(ŵ, −q) = 4·[.982014, .017986, −.524979, −.475021]
  batch = testing.make_rollout([1, 1, 0, 0], [2, 6, 4, 9], max_len=10,
                               old_logp=_logp_rows([-0.5, -0.5, -1.0, -2.0], 10))
  out, _, metrics = _run(batch, 4)
  np.testing.assert_allclose(out.rewards_b, [3.9280552, 0.0719448, -2.0999168, -1.9000833],
                             rtol=1e-5)
  np.testing.assert_allclose(np.sum(out.rewards_b), 0.0, atol=1e-5)   # zero-sum per group
  np.testing.assert_allclose(metrics["drpo/valid_frac"], 1.0)


def test_drpo_skips_all_correct_all_wrong_and_single_sample_groups():
  batch = testing.make_rollout([1, 1, 0, 0, 1, 0], [3, 5, 3, 5, 0, 7], max_len=8)
  out, _, metrics = _run(batch, 2)
  # groups: all correct, all wrong, mixed → only the last is non-zero
  assert np.all(np.asarray(out.rewards_b)[:4] == 0)
  # mixed group of 2: one positive → ŵ = 1; one negative → q = 1 → 2·[1, −1];
  # the zero-length correct answer is valid (ell = 0).
  np.testing.assert_allclose(out.rewards_b[4:], [2.0, -2.0], rtol=1e-6)
  np.testing.assert_allclose(metrics["drpo/valid_frac"], 1 / 3, rtol=1e-6)
  out1, _, m1 = _run(batch, 1)                                      # G = 1: never both
  np.testing.assert_array_equal(out1.rewards_b, np.zeros(6))
  np.testing.assert_allclose(m1["drpo/valid_frac"], 0.0)


def test_drpo_large_lambda_is_uniform_disco_weights():
  # λ → ∞: positives weigh 1/|Pos| each whatever their length (plain DisCO).
  batch = testing.make_rollout([1, 1, 1, 0], [1, 5, 9, 9], max_len=10)
  out, _, _ = _run(batch, 4, lam=1e6)
  np.testing.assert_allclose(out.rewards_b[:3], [4 / 3] * 3, rtol=1e-4)
  np.testing.assert_allclose(out.rewards_b[3], -4.0, rtol=1e-6)


def test_drpo_truncated_answers_weigh_least():
  # A truncated wrong answer is just a negative; among positives the longest gets the least.
  batch = testing.make_rollout([1, 1, 0, 0], [3, 7, 10, 2], max_len=10)
  r = np.asarray(_run(batch, 4)[0].rewards_b)
  assert r[0] > r[1] > 0 > max(r[2], r[3])


def _drpo_objective(logp_bt, batch, group_size, lam, tau, pad):
  """(1/Q) Σ_q J_q straight from DRPO, arXiv:2510.04474 (invalid groups add 0, still in Q)."""
  s_pg = types.to_groups((logp_bt * batch.mask_bt).sum(1) / batch.mask_bt.sum(1), group_size)
  c_pg = types.to_groups(batch.correct_b, group_size)
  ell_pg = types.to_groups(batch.length_b.astype(jnp.float32), group_size) / pad
  logit_pg = jnp.where(c_pg, (1 - ell_pg) / lam, -jnp.inf)
  w_pg = jax.nn.softmax(logit_pg, axis=1)
  w_pg = jnp.where(c_pg, w_pg, 0.0)
  neg_lse_p = tau * jax.nn.logsumexp(jnp.where(c_pg, -jnp.inf, s_pg / tau), axis=1)
  valid_p = c_pg.any(1) & (~c_pg).any(1)
  j_p = jnp.where(valid_p, (w_pg * s_pg).sum(1) - jnp.where(valid_p, neg_lse_p, 0.0), 0.0)
  return j_p.mean()


@pytest.mark.integration  # compiles its own model programs: ~10 s on 2 cores
def test_drpo_pipeline_gradient_equals_the_objective_gradient():
  # reward drpo → advantage dr_grpo → ppo_clip + seq_mean_token_mean at ratio 1 must give
  # ∇ loss = −∇ (1/Q) Σ_q J_q (configs/drpo.py's choices; drpo.py module docstring).
  group_size, t = 4, 6
  rng = np.random.default_rng(0)
  correct = [1, 0, 1, 0,   1, 1, 1, 1,   0, 1, 0, 0]            # mixed, all correct, mixed
  length = [2, 6, 4, 5,   3, 3, 6, 1,   6, 2, 4, 1]
  logp_bt = jnp.asarray(-rng.uniform(0.1, 2.0, (12, t)), jnp.float32)
  batch = testing.make_rollout(correct, length, max_len=t, old_logp=np.asarray(logp_bt))
  out, _, _ = _run(batch, group_size)
  mask_bt = losses.loss_mask(batch, out)
  adv_bt, _ = advantages.ADVANTAGES.get("dr_grpo")(out, batch, mask_bt, group_size=group_size)
  loss_fn = losses.make_loss_fn(
      policy_loss="ppo_clip", aggregation="seq_mean_token_mean", group_size=group_size,
      policy_loss_kwargs=common.POLICY_LOSS_DEFAULTS["ppo_clip"])
  grad_pipeline = jax.grad(lambda lp: loss_fn(lp, adv_bt, mask_bt, batch)[0])(logp_bt)
  kw = {k: o.default for k, o in REWARDS.component("drpo").options.items()}
  grad_formula = jax.grad(lambda lp: -_drpo_objective(lp, batch, group_size, kw["lam"],
                                                      kw["tau"], t))(logp_bt)
  np.testing.assert_allclose(grad_pipeline * batch.mask_bt, grad_formula * batch.mask_bt,
                             rtol=1e-4, atol=1e-6)
  assert np.abs(np.asarray(grad_formula)).max() > 1e-3               # a real signal
  # the std-normalised GRPO advantage would rescale the weights: not DRPO's gradient
  adv_std, _ = advantages.ADVANTAGES.get("grpo")(out, batch, mask_bt, group_size=group_size)
  grad_std = jax.grad(lambda lp: loss_fn(lp, adv_std, mask_bt, batch)[0])(logp_bt)
  assert not np.allclose(grad_std * batch.mask_bt, grad_formula * batch.mask_bt, atol=1e-4)
