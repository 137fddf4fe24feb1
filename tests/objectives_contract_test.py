"""Registry-wide contracts with every optional Rollout input filled (teacher log-probs, token
entropies, ...), so they cover variants added later: policy-loss and KL gradients against
central finite differences in float64, jit-ability, static shapes, and invariance to permuting
whole groups for advantages, filters and policy losses."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing, types
from concise_jax.advantages import ADVANTAGES
from concise_jax.filters import GROUP_FILTERS
from concise_jax.losses import KL_ESTIMATORS, POLICY_LOSSES
from configs import common

G, P, T = 2, 3, 4
PERM = [2, 0, 1]


def _batch(seed=0):
  """B = 6 rows, groups of 2: one all-correct group, a zero-length and a truncated row."""
  rng = np.random.default_rng(seed)
  batch = testing.make_rollout(correct=[1, 1, 1, 0, 0, 1], length=[4, 2, 0, 3, 4, 1],
                               max_len=T, group_size=G,
                               old_logp=(-rng.uniform(0.5, 2.0, (P * G, T))).astype(np.float32))
  return testing.with_optional_fields(batch, seed=seed)


def _f64(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x, tree)


def _rho(logp_bt, batch):
  return jnp.exp(logp_bt - batch.old_logp_bt)


def _gspo_grad(logp_bt, adv_bt, batch, weight_bt, eps_low, eps_high, **_):
  """−A·s_i per token where the unclipped branch is active (sequence ratio, token form)."""
  n_b = jnp.maximum(batch.mask_bt.sum(1), 1.0)
  s_b1 = jnp.exp(((logp_bt - batch.old_logp_bt) * batch.mask_bt).sum(1) / n_b)[:, None]
  active_bt = (-adv_bt * s_b1) >= (-adv_bt * jnp.clip(s_b1, 1 - eps_low, 1 + eps_high))
  return jnp.where(active_bt, -adv_bt * s_b1, 0.0) * weight_bt


def _dispo_grad(logp_bt, adv_bt, batch, weight_bt, eps_low_pos, eps_high_pos, eps_low_neg,
                eps_high_neg, **_):
  """Mask mode: −ρ·A inside the sample's band, 0 outside."""
  rho_bt, c_b1 = _rho(logp_bt, batch), batch.correct_b[:, None]
  lo_b1 = jnp.where(c_b1, 1 - eps_low_pos, 1 - eps_low_neg)
  hi_b1 = jnp.where(c_b1, 1 + eps_high_pos, 1 + eps_high_neg)
  return jnp.where((rho_bt >= lo_b1) & (rho_bt <= hi_b1), -rho_bt * adv_bt, 0.0) * weight_bt


# Surrogates built with stop-gradients have a gradient that is, by design, NOT the derivative of
# their value: check those against the intended gradient written independently (defaults' mode).
REFERENCE_GRADIENTS = {
    "reinforce": lambda lp, a, b, w, **kw: -a * w,
    "cispo": lambda lp, a, b, w, eps_low, eps_high, **kw: (
        -jnp.clip(_rho(lp, b), 1 - eps_low, 1 + eps_high) * a * w),
    "dispo": _dispo_grad,
    "gspo": _gspo_grad,
}


@pytest.mark.parametrize("name", [  # dph_rl: ~3 s on 2 cores
    pytest.param(n, marks=pytest.mark.integration) if n == "dph_rl" else n
    for n in POLICY_LOSSES.names()])
def test_policy_loss_gradient_matches_finite_differences(name):
  fn = functools.partial(POLICY_LOSSES.get(name), group_size=G,
                         **common.POLICY_LOSS_DEFAULTS[name])
  rng = np.random.default_rng(1)
  with jax.enable_x64(True):
    batch = _f64(_batch())
    # log-ratios of ±0.1, ±0.5: inside and outside the usual bands, far (relative to h) from
    # every registered clip edge
    logp_bt = batch.old_logp_bt + jnp.asarray(rng.choice([-0.5, -0.1, 0.1, 0.5], (P * G, T)))
    adv_bt = jnp.asarray(rng.normal(size=(P * G, 1)), jnp.float64) * batch.mask_bt
    weight_bt = jnp.asarray(rng.uniform(0.5, 1.5, (P * G, T))) * batch.mask_bt
    f = jax.jit(lambda lp: jnp.sum(fn(lp, adv_bt, batch.mask_bt, batch)[0] * weight_bt))
    grad_bt = jax.grad(f)(logp_bt)
    assert grad_bt.dtype == jnp.float64
    assert np.abs(np.asarray(grad_bt)).max() > 1e-3          # not trivially zero
    if name in REFERENCE_GRADIENTS:
      want_bt = REFERENCE_GRADIENTS[name](logp_bt, adv_bt, batch, weight_bt,
                                          **common.POLICY_LOSS_DEFAULTS[name])
      np.testing.assert_allclose(grad_bt, want_bt, rtol=1e-6, atol=1e-9)
      return
    h = 1e-6
    eye_kbt = jnp.eye(P * G * T, dtype=jnp.float64).reshape(-1, P * G, T)
    f_k = jax.jit(jax.vmap(f))
    fd_bt = ((f_k(logp_bt + h * eye_kbt) - f_k(logp_bt - h * eye_kbt)) / (2 * h)).reshape(
        P * G, T)
    np.testing.assert_allclose(grad_bt, fd_bt, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", POLICY_LOSSES.names())
def test_policy_loss_shapes_and_group_permutation(name):
  fn = jax.jit(functools.partial(POLICY_LOSSES.get(name), group_size=G,
                                 **common.POLICY_LOSS_DEFAULTS[name]))
  rng = np.random.default_rng(2)
  batch = _batch(2)
  logp_bt = batch.old_logp_bt + jnp.asarray(rng.normal(scale=0.3, size=(P * G, T)), jnp.float32)
  adv_bt = jnp.asarray(rng.normal(size=(P * G, 1)), jnp.float32) * batch.mask_bt
  loss_bt, aux = fn(logp_bt, adv_bt, batch.mask_bt, batch)
  chex.assert_shape(loss_bt, (P * G, T))
  chex.assert_tree_all_finite((loss_bt, aux))
  chex.assert_tree_shape_prefix(aux, (P * G, T))
  perm_loss_bt, _ = fn(*testing.permute_groups((logp_bt, adv_bt, batch.mask_bt, batch), PERM, G))
  np.testing.assert_allclose(perm_loss_bt, testing.permute_groups(loss_bt, PERM, G), rtol=1e-6)


@pytest.mark.parametrize("name", KL_ESTIMATORS.names())
def test_kl_gradient_matches_finite_differences_and_is_zero_at_equality(name):
  fn = functools.partial(KL_ESTIMATORS.get(name), **common.KL_DEFAULTS[name])
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    logp_bt = jnp.asarray(-rng.uniform(0.5, 3.0, (3, 4)))
    ref_bt = logp_bt + jnp.asarray(rng.normal(size=(3, 4)))
    f = jax.jit(lambda lp: fn(lp, ref_bt).sum())
    h = 1e-6
    eye_kbt = jnp.eye(12, dtype=jnp.float64).reshape(12, 3, 4)
    fd_bt = ((jax.vmap(f)(logp_bt + h * eye_kbt) - jax.vmap(f)(logp_bt - h * eye_kbt))
             / (2 * h)).reshape(3, 4)
    np.testing.assert_allclose(jax.grad(f)(logp_bt), fd_bt, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fn(logp_bt, logp_bt), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", ADVANTAGES.names())
def test_advantage_contract_with_all_inputs(name):
  fn = jax.jit(functools.partial(ADVANTAGES.get(name), group_size=G,
                                 **common.ADVANTAGE_DEFAULTS[name]))
  batch = _batch(4)
  rewards = jnp.asarray(np.random.default_rng(4).normal(size=P * G), jnp.float32)
  reward_out = types.make_reward_output(batch, rewards)
  mask_bt = batch.mask_bt * jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)[:, None]  # dropped group
  adv_bt, metrics = fn(reward_out, batch, mask_bt)
  chex.assert_shape(adv_bt, (P * G, T))
  chex.assert_tree_all_finite((adv_bt, metrics))
  assert all(np.shape(v) == () for v in metrics.values())
  np.testing.assert_array_equal(np.asarray(adv_bt)[np.asarray(mask_bt) == 0], 0)
  perm_adv_bt, _ = fn(*testing.permute_groups((reward_out, batch, mask_bt), PERM, G))
  np.testing.assert_allclose(perm_adv_bt, testing.permute_groups(adv_bt, PERM, G),
                             rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", GROUP_FILTERS.names())
def test_filter_jits_with_all_inputs_and_keeps_whole_groups(name):
  fn = jax.jit(functools.partial(GROUP_FILTERS.get(name), group_size=G,
                                 **common.FILTER_DEFAULTS[name]))
  batch = _batch(5)
  reward_out = types.make_reward_output(batch, jnp.arange(P * G, dtype=jnp.float32))
  keep_b = np.asarray(fn(batch, reward_out))
  chex.assert_shape(keep_b, (P * G,))
  assert np.all(keep_b.reshape(P, G) == keep_b.reshape(P, G)[:, :1])
  perm_keep_b = fn(*testing.permute_groups((batch, reward_out), PERM, G))
  np.testing.assert_array_equal(perm_keep_b, testing.permute_groups(keep_b, PERM, G))
