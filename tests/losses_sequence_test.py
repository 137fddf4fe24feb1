"""GSPO (sequence ratio, token form) and LUSPO (its |y|-weighted aggregation): values and
gradients against the paper's sequence-level formula, computed independently."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import losses, testing
from concise_jax.losses import AGGREGATIONS, POLICY_LOSSES

# Row 0: 3 tokens, mean log-ratio 0.1 → s0 = e^0.1 = 1.105171; row 1: 2 tokens, mean −0.1 →
# s1 = e^−0.1 = 0.904837 (its pad value 7.0 must not count). old_logp = 0.
LOGP_BT = jnp.array([[0.3, -0.1, 0.1], [-0.2, 0.0, 7.0]], jnp.float32)
ADV_BT = jnp.array([[1.0] * 3, [-1.0] * 3], jnp.float32)
BATCH = testing.make_rollout(correct=[1, 0], length=[3, 2], max_len=3)
S = np.exp([0.1, -0.1])


def _loss(aggregation, eps=0.2, **agg_kwargs):
  loss_fn = losses.make_loss_fn(
      policy_loss="gspo", aggregation=aggregation, group_size=2,
      policy_loss_kwargs={"eps_low": eps, "eps_high": eps}, aggregation_kwargs=agg_kwargs)
  return jax.jit(lambda lp: loss_fn(lp, ADV_BT, BATCH.mask_bt, BATCH)[0])


def _sequence_form(logp_bt, *, eps, length_weighted):
  """The papers' formulas written directly on sequences: (1/B) Σ_i w_i·max(−A s, −A clip(s))."""
  m_bt = BATCH.mask_bt
  n_b = m_bt.sum(1)
  s_b = jnp.exp((logp_bt * m_bt).sum(1) / n_b)
  a_b = ADV_BT[:, 0]
  per_seq_b = jnp.maximum(-a_b * s_b, -a_b * jnp.clip(s_b, 1 - eps, 1 + eps))
  return jnp.mean(per_seq_b * (n_b if length_weighted else 1.0))


def test_gspo_token_form_golden_and_equals_sequence_form():
  fn = _loss("seq_mean_token_mean")
  # both ratios inside 1 ± 0.2: (−A0·s0 − A1·s1) / 2 = (−1.105171 + 0.904837) / 2
  np.testing.assert_allclose(fn(LOGP_BT), (-S[0] + S[1]) / 2, rtol=1e-6)
  np.testing.assert_allclose(fn(LOGP_BT), -0.100167, rtol=1e-5)
  grad_bt = jax.grad(fn)(LOGP_BT)
  want_bt = jax.grad(functools.partial(_sequence_form, eps=0.2, length_weighted=False))(LOGP_BT)
  # by hand: ∂s_i/∂logp_t = s_i/n_i → row 0: −½·s0/3 = −0.184195; row 1: +½·s1/2 = 0.226209
  np.testing.assert_allclose(want_bt, [[-0.184195] * 3, [0.226209, 0.226209, 0]], rtol=1e-5)
  np.testing.assert_allclose(grad_bt, want_bt, rtol=1e-5, atol=1e-8)


def test_gspo_clipped_sequences_have_no_gradient():
  fn = _loss("seq_mean_token_mean", eps=0.05)
  # s0 = 1.105 > 1.05 with A > 0 and s1 = 0.905 < 0.95 with A < 0: both clipped
  np.testing.assert_allclose(fn(LOGP_BT), (-1.05 + 0.95) / 2, rtol=1e-6)
  np.testing.assert_array_equal(jax.grad(fn)(LOGP_BT), np.zeros((2, 3)))
  _, aux = POLICY_LOSSES.get("gspo")(LOGP_BT, ADV_BT, BATCH.mask_bt, BATCH, group_size=2,
                                     eps_low=0.05, eps_high=0.05)
  np.testing.assert_array_equal(aux["clip_frac"], np.ones((2, 3)))


def test_luspo_is_gspo_with_length_weighted_sequence_mean():
  fn = _loss("seq_mean_token_sum", norm_const=1.0)
  # (1/B) Σ_i |y_i|·ℓ_i = (3·(−1.105171) + 2·0.904837) / 2 = −0.752919
  np.testing.assert_allclose(fn(LOGP_BT), (-3 * S[0] + 2 * S[1]) / 2, rtol=1e-6)
  grad_bt = jax.grad(fn)(LOGP_BT)
  want_bt = jax.grad(functools.partial(_sequence_form, eps=0.2, length_weighted=True))(LOGP_BT)
  # every token's gradient no longer shrinks with length: row 0 −s0/2, row 1 +s1/2
  np.testing.assert_allclose(want_bt, [[-S[0] / 2] * 3, [S[1] / 2, S[1] / 2, 0]], rtol=1e-5)
  np.testing.assert_allclose(grad_bt, want_bt, rtol=1e-5, atol=1e-8)


def test_gspo_zero_length_row_and_ratio_clamp():
  batch = testing.make_rollout(correct=[1, 0], length=[3, 0], max_len=3)
  logp_bt = jnp.array([[30.0, 30.0, 30.0], [1.0, 1.0, 1.0]])
  loss_bt, aux = POLICY_LOSSES.get("gspo")(logp_bt, ADV_BT, batch.mask_bt, batch, group_size=2,
                                           eps_low=1e9, eps_high=1e9, seq_log_ratio_max=10.0)
  np.testing.assert_allclose(aux["seq_ratio"][0], np.exp(10.0), rtol=1e-6)   # log s capped
  np.testing.assert_allclose(aux["seq_ratio"][1], 1.0)             # empty row: s = 1, no NaN
  agg = AGGREGATIONS.get("seq_mean_token_mean")
  value = agg(loss_bt, batch.mask_bt)
  np.testing.assert_allclose(value, -np.exp(10.0), rtol=1e-6)      # only row 0 counts
