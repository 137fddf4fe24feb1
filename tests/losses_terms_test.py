"""k1 / k2 KL estimators, seq_mean_token_sum_norm's divisor, the abs estimator, the
dual-clip gradient and the entropy bonus's sign."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import losses, testing
from concise_jax.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from concise_jax.train import logprobs


def test_k1_k2_golden_values_and_gradients():
  logp, ref = jnp.array([[-1.0, -2.0]]), jnp.array([[-1.5, -1.0]])     # d = [0.5, −1]
  np.testing.assert_allclose(KL_ESTIMATORS.get("k1")(logp, ref), [[0.5, -1.0]])
  np.testing.assert_allclose(KL_ESTIMATORS.get("k2")(logp, ref), [[0.125, 0.5]])   # ½ d²
  g1 = jax.grad(lambda lp: KL_ESTIMATORS.get("k1")(lp, ref).sum())(logp)
  g2 = jax.grad(lambda lp: KL_ESTIMATORS.get("k2")(lp, ref).sum())(logp)
  np.testing.assert_allclose(g1, [[1.0, 1.0]])
  np.testing.assert_allclose(g2, [[0.5, -1.0]])                      # d: reverse-KL gradient
  g_ref = jax.grad(lambda r: KL_ESTIMATORS.get("k2")(logp, r).sum())(ref)
  np.testing.assert_array_equal(g_ref, np.zeros((1, 2)))             # reference is frozen


def test_seq_mean_token_sum_norm_divides_by_nonempty_sequences_and_width():
  loss_bt = jnp.array([[-1.28, -1.1, -0.5], [0.8, 1.3, 1.0], [9.0, 9.0, 9.0]])
  mask_bt = testing.make_rollout(correct=[1, 0, 0], length=[3, 2, 0], max_len=3).mask_bt
  norm = AGGREGATIONS.get("seq_mean_token_sum_norm")
  oat = AGGREGATIONS.get("seq_mean_token_sum")
  # Σ m·L = −1.28 − 1.1 − 0.5 + 0.8 + 1.3 = −0.78 over B' = 2 non-empty rows (the empty one
  # neither adds loss nor dilutes the mean)
  np.testing.assert_allclose(norm(loss_bt, mask_bt), -0.78 / (2 * 3), rtol=1e-6)  # C = T = 3
  np.testing.assert_allclose(norm(loss_bt, mask_bt, norm_const=10.0), -0.039, rtol=1e-6)
  np.testing.assert_allclose(oat(loss_bt, mask_bt, norm_const=10.0), -0.039, rtol=1e-6)
  assert float(norm(loss_bt, jnp.zeros_like(mask_bt))) == 0.0   # no tokens: 0, not NaN


def test_abs_kl_is_the_absolute_log_ratio_with_a_sign_gradient():
  logp = jnp.array([[-1.0, -2.0, -0.5]])
  ref = jnp.array([[-1.5, -1.0, -0.5]])
  kl = KL_ESTIMATORS.get("abs")
  np.testing.assert_allclose(kl(logp, ref), [[0.5, 1.0, 0.0]])
  grad = jax.grad(lambda lp: kl(lp, ref).sum())(logp)
  np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]])          # sign(d): no push where d = 0
  np.testing.assert_array_equal(jax.grad(lambda r: kl(logp, r).sum())(ref), np.zeros((1, 3)))


def test_dual_clip_caps_negative_advantage_loss_and_stops_its_gradient():
  batch = testing.make_rollout(correct=[0], length=[3])
  adv_bt = jnp.array([[-1.0, -1.0, 1.0]])
  fn = lambda lp: POLICY_LOSSES.get("ppo_clip")(lp, adv_bt, batch.mask_bt, batch,
                                                group_size=1, eps_high=0.28,
                                                dual_clip_c=10.0)[0]
  logp = jnp.log(jnp.array([[20.0, 5.0, 20.0]]))
  # ρ = 20, A = −1: −A·ρ = 20 > c = 10 → capped at 10, no gradient; ρ = 5: 5 < 10 → loss 5,
  # gradient −A·ρ = 5; ρ = 20 with A > 0 is clipped at 1.28 as usual (gradient 0).
  np.testing.assert_allclose(fn(logp), [[10.0, 5.0, -1.28]], rtol=1e-6)
  np.testing.assert_allclose(jax.grad(lambda lp: fn(lp).sum())(logp), [[0.0, 5.0, 0.0]],
                             rtol=1e-6)


@pytest.mark.integration  # eager XLA compiles: ~5 s on 2 cores
def test_entropy_bonus_gradient_raises_entropy():
  # compute_loss subtracts entropy_coef·agg(H): one gradient step on the logits must raise H.
  batch = testing.make_rollout(correct=[1], length=[3])
  tokens_bt = jnp.array([[1, 2, 3]])
  logits_btv = jnp.asarray(np.random.default_rng(0).normal(size=(1, 3, 8)) * 3, jnp.float32)
  loss_fn = losses.make_loss_fn(policy_loss="ppo_clip", aggregation="token_mean", group_size=1,
                                entropy_coef=0.5)

  def loss_and_entropy(z_btv):
    logp_bt, ent_bt = logprobs._logp_entropy_from_logits(z_btv, tokens_bt, 1.0)  # pylint: disable=protected-access
    loss, _ = loss_fn(logp_bt, jnp.zeros((1, 3)), batch.mask_bt,
                      batch.replace(old_logp_bt=jax.lax.stop_gradient(logp_bt)),
                      entropy_bt=ent_bt)
    return loss, ent_bt.mean()

  (loss, ent0), grad = jax.value_and_grad(loss_and_entropy, has_aux=True)(logits_btv)
  np.testing.assert_allclose(loss, -0.5 * ent0, rtol=1e-6)   # zero advantage: only −c·H
  _, ent1 = loss_and_entropy(logits_btv - 0.1 * grad)
  assert ent1 > ent0
  # and d loss / d H = −c · m / n < 0 per token
  g_h = jax.grad(lambda h: loss_fn(jnp.zeros((1, 3)), jnp.zeros((1, 3)), batch.mask_bt,
                                   batch.replace(old_logp_bt=jnp.zeros((1, 3))),
                                   entropy_bt=h)[0])(jnp.ones((1, 3)))
  np.testing.assert_allclose(g_h, [[-0.5 / 3] * 3], rtol=1e-6)
