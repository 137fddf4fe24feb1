"""KDRL (reverse KL to a teacher, reward-guided mask) and DPH-RL (forward KL / JS to π_0 on
near-perfect groups): values and gradients by hand. On-policy (old = logp) so ρ = 1."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.losses import POLICY_LOSSES

LOGP = np.array([[-1.0, -2.0]] * 4, np.float32)
TEACHER = np.array([[-1.5, -1.0]] * 4, np.float32)       # d = logp − teacher = [0.5, −1.0]


def _batch(correct):
  return testing.make_rollout(correct=correct, length=[2] * len(correct), old_logp=LOGP[:len(
      correct)], teacher_logp_bt=TEACHER[:len(correct)])


def _value_grad(name, batch, adv, **kw):
  n = batch.mask_bt.shape[0]
  adv_bt = jnp.full((n, 2), adv, jnp.float32)
  fn = lambda lp: POLICY_LOSSES.get(name)(lp, adv_bt, batch.mask_bt, batch, **kw)[0]
  logp = jnp.asarray(LOGP[:n])
  return np.asarray(fn(logp)), np.asarray(jax.grad(lambda lp: fn(lp).sum())(logp))


def test_kdrl_golden_k2_reward_guided():
  batch = _batch([0, 1])
  value, grad = _value_grad("kdrl", batch, 1.0, group_size=2, kd_coef=0.1, estimator="k2")
  # wrong row 0: −A + β·½d² = −1 + 0.1·[0.125, 0.5] = [−0.9875, −0.95]; grad −A + β·d
  #   = [−1 + 0.05, −1 − 0.1]. Correct row 1: KD masked out → −A, grad −1.
  np.testing.assert_allclose(value, [[-0.9875, -0.95], [-1.0, -1.0]], rtol=1e-6)
  np.testing.assert_allclose(grad, [[-0.95, -1.1], [-1.0, -1.0]], rtol=1e-6)
  _, grad_all = _value_grad("kdrl", batch, 1.0, group_size=2, kd_coef=0.1, estimator="k2",
                            mask_correct=False)
  np.testing.assert_allclose(grad_all[1], grad_all[0], rtol=1e-6)   # KD on every response


@pytest.mark.parametrize("estimator,want_grad", [
    ("k1", [0.1, 0.1]),                                   # ∂(logp − t)/∂logp = 1
    ("k3", [0.1 * (1 - np.exp(-0.5)), 0.1 * (1 - np.exp(1.0))]),  # 1 − exp(t − logp)
])
def test_kdrl_estimators(estimator, want_grad):
  _, grad = _value_grad("kdrl", _batch([0, 0]), 0.0, group_size=2, kd_coef=0.1,
                        estimator=estimator)
  np.testing.assert_allclose(grad[0], want_grad, rtol=1e-5)


def test_kdrl_needs_teacher_logp():
  batch = testing.make_rollout(correct=[0, 1], length=[2, 2])
  with pytest.raises(ValueError, match="teacher"):
    POLICY_LOSSES.get("kdrl")(jnp.zeros((2, 2)), jnp.zeros((2, 2)), batch.mask_bt, batch,
                              group_size=2)


def test_dph_rl_forward_kl_only_on_near_perfect_groups():
  batch = _batch([1, 1, 1, 0])          # group 0 all correct (D_pef), group 1 mixed (D_exp)
  value, grad = _value_grad("dph_rl", batch, 0.5, group_size=2, coef=0.1, is_cap=5.0)
  # D_pef rows: w = π_0/π_old = exp(t − logp) = [e^−0.5, e^1] = [0.606531, 2.718282];
  #   f = −log u = t − logp = [−0.5, 1.0] → 0.1·w·f = [−0.030327, 0.271828]; grad −0.1·w.
  # D_exp rows: PPO only, on-policy → −A = −0.5, grad −0.5.
  w = np.exp([-0.5, 1.0])
  np.testing.assert_allclose(value[:2], [0.1 * w * [-0.5, 1.0]] * 2, rtol=1e-5)
  np.testing.assert_allclose(grad[:2], [-0.1 * w] * 2, rtol=1e-5)
  np.testing.assert_allclose(value[2:], -0.5, rtol=1e-6)
  np.testing.assert_allclose(grad[2:], -0.5, rtol=1e-6)
  _, grad_cap = _value_grad("dph_rl", batch, 0.5, group_size=2, coef=0.1, is_cap=2.0)
  np.testing.assert_allclose(grad_cap[0], [-0.1 * w[0], -0.2], rtol=1e-5)   # e^1 capped at 2
  _, grad_none = _value_grad("dph_rl", batch, 0.5, group_size=2, coef=0.1, is_cap=None)
  np.testing.assert_allclose(grad_none[0], [-0.1, -0.1], rtol=1e-6)         # w = 1


@pytest.mark.integration  # eager XLA compiles: ~3 s on 2 cores
def test_dph_rl_js_golden():
  batch = testing.make_rollout(correct=[1, 1], length=[1, 1], old_logp=np.zeros((2, 1)),
                               teacher_logp_bt=np.full((2, 1), -np.log(2.0)))
  fn = lambda lp: POLICY_LOSSES.get("dph_rl")(lp, jnp.zeros((2, 1)), batch.mask_bt, batch,
                                              group_size=2, divergence="js", coef=1.0,
                                              is_cap=None)[0]
  logp = jnp.zeros((2, 1))                       # u = π/π_0 = 2
  # f(2) = ½[2 ln 2 − 3 ln 1.5] = ½[1.386294 − 1.216395] = 0.084950
  np.testing.assert_allclose(fn(logp), 0.084950, rtol=1e-5)
  # df/dlog u = ½ u ln(2u/(u+1)) = ln(4/3) = 0.287682
  np.testing.assert_allclose(jax.grad(lambda lp: fn(lp).sum())(logp), 0.287682, rtol=1e-5)
  # at u = 1 both divergences vanish
  same = batch.replace(teacher_logp_bt=jnp.zeros((2, 1)))
  for div in ("js", "fwd_kl"):
    out, _ = POLICY_LOSSES.get("dph_rl")(logp, jnp.zeros((2, 1)), same.mask_bt, same,
                                         group_size=2, divergence=div)
    np.testing.assert_allclose(out, 0.0, atol=1e-7)
