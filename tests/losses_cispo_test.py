"""CISPO (band vs TRL's absolute cap) and DISPO (four bounds, mask vs clip): goldens and
gradients. old_logp = 0, so ρ = exp(logp)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.losses import POLICY_LOSSES

RHO = np.array([[0.5, 1.0, 7.0]])
LOGP = jnp.asarray(np.log(RHO), jnp.float32)
ONE = testing.make_rollout(correct=[1], length=[3])


def _cispo(logp_bt, adv_bt, **kw):
  return POLICY_LOSSES.get("cispo")(logp_bt, adv_bt, ONE.mask_bt, ONE, group_size=1, **kw)


@pytest.mark.parametrize("kw,w", [
    ({"cap_mode": "band", "eps_low": 0.2, "eps_high": 0.28}, [0.8, 1.0, 1.28]),  # verl / paper
    ({"cap_mode": "abs_max", "abs_cap": 5.0}, [0.5, 1.0, 5.0]),                   # TRL: no floor
    ({"cap_mode": "band", "eps_low": 1.0, "eps_high": 0.28}, [0.5, 1.0, 1.28]),   # defaults
])
def test_cispo_golden_value_and_gradient(kw, w):
  adv_bt = jnp.ones((1, 3))
  loss_bt, aux = _cispo(LOGP, adv_bt, **kw)
  # loss = −sg(w)·A·logp: e.g. band: −0.8·ln 0.5 = 0.554518, −1.28·ln 7 = −2.490765
  np.testing.assert_allclose(loss_bt, -np.array([w]) * np.log(RHO), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(aux["is_weight"], [w], rtol=1e-6)
  grad_bt = jax.grad(lambda lp: _cispo(lp, adv_bt, **kw)[0].sum())(LOGP)
  # every token keeps a gradient −w·A, also the capped ones (PPO would give 0 at ρ = 7, A > 0)
  np.testing.assert_allclose(grad_bt, -np.array([w]), rtol=1e-6)


def test_cispo_band_and_abs_cap_differ_below_one():
  band, _ = _cispo(LOGP, jnp.ones((1, 3)), cap_mode="band", eps_low=0.2, eps_high=4.0)
  absm, _ = _cispo(LOGP, jnp.ones((1, 3)), cap_mode="abs_max", abs_cap=5.0)
  # ρ = 0.5: band lifts the weight to 0.8, the absolute cap leaves 0.5
  np.testing.assert_allclose(band[0, 0] / absm[0, 0], 0.8 / 0.5, rtol=1e-6)
  np.testing.assert_allclose(band[0, 2], absm[0, 2], rtol=1e-6)  # ρ = 7 → 5 in both
  with pytest.raises(ValueError, match="band, abs_max"):
    _cispo(LOGP, jnp.ones((1, 3)), cap_mode="trl")


# DISPO: row 0 correct (A = +1), row 1 wrong (A = −1), ρ = [0.7, 1.1, 1.4] in both.
TWO = testing.make_rollout(correct=[1, 0], length=[3, 3])
RHO2 = np.array([[0.7, 1.1, 1.4]] * 2)
ADV2 = jnp.array([[1.0] * 3, [-1.0] * 3])
BANDS = dict(eps_low_pos=0.2, eps_high_pos=0.28, eps_low_neg=0.4, eps_high_neg=0.05)


def _dispo_grad(mode):
  fn = lambda lp: POLICY_LOSSES.get("dispo")(lp, ADV2, TWO.mask_bt, TWO, group_size=2,
                                             outside_band=mode, **BANDS)[0].sum()
  return jax.grad(fn)(jnp.asarray(np.log(RHO2), jnp.float32))


def test_dispo_mask_mode_golden():
  # correct band [0.8, 1.28]: 0.7 and 1.4 outside → no gradient, 1.1 → −1.1·A = −1.1
  # wrong band [0.6, 1.05]: 0.7 inside → −0.7·A = +0.7, 1.1 and 1.4 outside → 0
  np.testing.assert_allclose(_dispo_grad("mask"), [[0, -1.1, 0], [0.7, 0, 0]], rtol=1e-6)
  _, aux = POLICY_LOSSES.get("dispo")(jnp.asarray(np.log(RHO2)), ADV2, TWO.mask_bt, TWO,
                                      group_size=2, **BANDS)
  np.testing.assert_array_equal(aux["clip_frac"], [[1, 0, 1], [0, 1, 1]])


def test_dispo_clip_mode_is_cispo_with_four_bounds():
  # weights clipped into each row's band: correct [0.8, 1.1, 1.28], wrong [0.7, 1.05, 1.05]
  np.testing.assert_allclose(_dispo_grad("clip"), [[-0.8, -1.1, -1.28], [0.7, 1.05, 1.05]],
                             rtol=1e-6)


def test_dispo_same_bounds_clip_equals_cispo_band():
  kw = dict(eps_low_pos=0.2, eps_high_pos=0.28, eps_low_neg=0.2, eps_high_neg=0.28)
  logp = jnp.asarray(np.log(RHO2), jnp.float32)
  d, _ = POLICY_LOSSES.get("dispo")(logp, ADV2, TWO.mask_bt, TWO, group_size=2,
                                    outside_band="clip", **kw)
  c, _ = POLICY_LOSSES.get("cispo")(logp, ADV2, TWO.mask_bt, TWO, group_size=2,
                                    cap_mode="band", eps_low=0.2, eps_high=0.28)
  np.testing.assert_allclose(d, c, rtol=1e-6)
