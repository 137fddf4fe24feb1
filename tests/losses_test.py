"""Policy losses, aggregations, KL estimators and their assembly: goldens and gradient checks."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import losses, testing, types
from concise_jax.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from configs import common

# Golden batch: 2 sequences, T = 3; row 1 has 2 valid tokens. old_logp = 0, so ρ = exp(logp).
RATIO_BT = np.array([[1.5, 1.1, 0.5], [0.7, 1.3, 1.0]])
ADV_BT = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]], np.float32)
GOLDEN = testing.make_rollout(correct=[1, 0], length=[3, 2], max_len=3,
                              ref_logp_bt=np.zeros((2, 3), np.float32))
LOGP_BT = jnp.asarray(np.log(RATIO_BT), jnp.float32)
# Per-token PPO loss with eps_low 0.2, eps_high 0.28: max(−Aρ, −A·clip(ρ, 0.8, 1.28))
#   row 0 (A=+1): ρ=1.5 → max(−1.5, −1.28) = −1.28 (clipped); ρ=1.1 → −1.1;
#                 ρ=0.5 → max(−0.5, −0.8) = −0.5
#   row 1 (A=−1): ρ=0.7 → max(0.7, 0.8) = 0.8 (clipped); ρ=1.3 → max(1.3, 1.28) = 1.3;
#                 ρ=1 → 1 (masked out)
GOLDEN_LOSS_BT = np.array([[-1.28, -1.1, -0.5], [0.8, 1.3, 1.0]])


def _policy_loss(name="ppo_clip", group_size=2, **overrides):
  return functools.partial(POLICY_LOSSES.get(name), group_size=group_size,
                           **{**common.POLICY_LOSS_DEFAULTS[name], **overrides})


def _aggregate(name, **overrides):
  return functools.partial(AGGREGATIONS.get(name),
                           **{**common.AGGREGATION_DEFAULTS[name], **overrides})


@pytest.mark.parametrize("registry,table", [
    (POLICY_LOSSES, common.POLICY_LOSS_DEFAULTS), (AGGREGATIONS, common.AGGREGATION_DEFAULTS),
    (KL_ESTIMATORS, common.KL_DEFAULTS)])
def test_defaults_tables_have_exactly_the_registered_names(registry, table):
  assert sorted(table) == registry.names()


def test_unknown_names_list_known_names():
  with pytest.raises(KeyError, match="seq_mean_token_mean, seq_mean_token_sum"):
    losses.make_loss_fn(policy_loss="ppo_clip", aggregation="seq_mean", group_size=2)
  with pytest.raises(KeyError, match="ppo_clip"):
    POLICY_LOSSES.get("ppo")
  with pytest.raises(KeyError, match="k3"):
    KL_ESTIMATORS.get("k4")


# ---- golden values ---------------------------------------------------------------------------

def test_ppo_clip_golden():
  fn = jax.jit(_policy_loss(eps_low=0.2, eps_high=0.28))
  loss_bt, aux = fn(LOGP_BT, jnp.asarray(ADV_BT), GOLDEN.mask_bt, GOLDEN)
  np.testing.assert_allclose(loss_bt, GOLDEN_LOSS_BT, rtol=1e-6)
  np.testing.assert_array_equal(aux["clip_frac"], [[1, 0, 0], [1, 0, 0]])
  np.testing.assert_allclose(aux["ratio"], RATIO_BT, rtol=1e-6)


def test_ppo_clip_dual_clip_golden():
  batch = testing.make_rollout(correct=[1], length=[3])
  logp_bt = jnp.log(jnp.array([[4.0, 2.0, 4.0]]))
  adv_bt = jnp.array([[-1.0, -1.0, 1.0]])
  loss_bt, aux = jax.jit(_policy_loss(eps_high=0.28, dual_clip_c=3.0))(
      logp_bt, adv_bt, batch.mask_bt, batch)
  # ρ=4, A=−1: max(4, 1.28) = 4 → capped at −A·c = 3;  ρ=2, A=−1: 2 < 3 stays;
  # ρ=4, A=+1: max(−4, −1.28) = −1.28, positive advantages are never dual-clipped.
  np.testing.assert_allclose(loss_bt, [[3.0, 2.0, -1.28]], rtol=1e-6)
  np.testing.assert_array_equal(aux["clip_frac_lower"], [[1, 0, 0]])


@pytest.mark.parametrize("name,overrides,want", [
    # token_mean: (−1.28 − 1.1 − 0.5 + 0.8 + 1.3) / 5 tokens = −0.78 / 5
    ("token_mean", {}, -0.156),
    # seq_mean_token_sum: (row sums −2.88 + 2.1) / 2 sequences
    ("seq_mean_token_sum", {}, -0.39),
    # ... with Dr. GRPO's constant L_max = 4: −0.39 / 4
    ("seq_mean_token_sum", {"norm_const": 4.0}, -0.0975),
    # seq_mean_token_mean: (−2.88/3 + 2.1/2) / 2 = (−0.96 + 1.05) / 2
    ("seq_mean_token_mean", {}, 0.045),
])
def test_aggregation_golden(name, overrides, want):
  value = jax.jit(_aggregate(name, **overrides))(jnp.asarray(GOLDEN_LOSS_BT, jnp.float32),
                                                 GOLDEN.mask_bt)
  np.testing.assert_allclose(value, want, rtol=1e-5)


@pytest.mark.parametrize("name", AGGREGATIONS.names())
def test_aggregation_zero_length_rows_and_padding(name):
  # A third, zero-length row must change nothing (B' counts non-empty rows only), and inf
  # in padded positions must not leak (inf · 0 would be NaN).
  loss_bt = np.concatenate([GOLDEN_LOSS_BT, np.zeros((1, 3))]).astype(np.float32)
  loss_bt[1, 2] = loss_bt[2, 0] = np.inf
  mask_bt = testing.make_rollout(correct=[1, 0, 0], length=[3, 2, 0], max_len=3).mask_bt
  fn = jax.jit(_aggregate(name))
  np.testing.assert_allclose(fn(jnp.asarray(loss_bt), mask_bt),
                             fn(jnp.asarray(GOLDEN_LOSS_BT, jnp.float32), GOLDEN.mask_bt),
                             rtol=1e-6)
  # Nothing valid at all: 0, with a finite gradient.
  value, grad = jax.jit(jax.value_and_grad(fn))(jnp.ones((2, 3)), jnp.zeros((2, 3)))
  assert value == 0 and np.all(np.isfinite(grad))


def test_k3_golden():
  logp_bt = jnp.log(jnp.array([[1.0, 2.0, 0.5]]))
  kl_bt = jax.jit(functools.partial(KL_ESTIMATORS.get("k3"), **common.KL_DEFAULTS["k3"]))(
      logp_bt, jnp.zeros((1, 3)))
  # d = logp − ref ∈ {0, ln 2, −ln 2}; k3 = e^{−d} + d − 1:
  #   0 → 0;  ln 2 → 0.5 + 0.693147 − 1 = 0.193147;  −ln 2 → 2 − 0.693147 − 1 = 0.306853
  np.testing.assert_allclose(kl_bt, [[0.0, 0.193147, 0.306853]], rtol=1e-5, atol=1e-7)


def _golden_loss_fn(aggregation="token_mean", **kwargs):
  return losses.make_loss_fn(policy_loss="ppo_clip", aggregation=aggregation, group_size=2,
                             policy_loss_kwargs={"eps_low": 0.2, "eps_high": 0.28}, **kwargs)


def test_compute_loss_golden_with_kl():
  loss_fn = _golden_loss_fn(kl_estimator="k3", kl_coef=0.1)
  loss, metrics = jax.jit(loss_fn)(LOGP_BT, jnp.asarray(ADV_BT), GOLDEN.mask_bt, GOLDEN)
  # k3 with ref = 0 is 1/ρ + ln ρ − 1 on the 5 valid tokens:
  #   ρ = 1.5, 1.1, 0.5, 0.7, 1.3 → 0.072132, 0.004401, 0.306853, 0.071896, 0.031595
  #   token mean = 0.486877 / 5 = 0.0973754
  # total = policy −0.156 + 0.1 · 0.0973754 = −0.1462625
  np.testing.assert_allclose(metrics["loss/policy"], -0.156, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss/kl"], 0.0973754, rtol=1e-5)
  np.testing.assert_allclose(loss, -0.1462625, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss/total"], loss)
  np.testing.assert_allclose(metrics["policy/clip_frac"], 0.4, rtol=1e-6)     # 2 of 5 tokens
  np.testing.assert_allclose(metrics["loss/num_tokens"], 5)
  # approx_kl = mean(ρ − 1 − ln ρ) over the 5 tokens (k3 of KL(π_old ‖ π_θ)), ≥ 0.
  want = np.mean([r - 1 - np.log(r) for r in (1.5, 1.1, 0.5, 0.7, 1.3)])
  np.testing.assert_allclose(metrics["policy/approx_kl"], want, rtol=1e-5)


def test_compute_loss_entropy_bonus_and_missing_inputs():
  loss_fn = jax.jit(_golden_loss_fn(entropy_coef=0.01))
  loss, metrics = loss_fn(LOGP_BT, jnp.asarray(ADV_BT), GOLDEN.mask_bt, GOLDEN,
                          entropy_bt=jnp.full((2, 3), 2.0))
  np.testing.assert_allclose(loss, -0.156 - 0.01 * 2.0, rtol=1e-5)     # − coef · mean(H)
  np.testing.assert_allclose(metrics["loss/entropy"], 2.0)
  with pytest.raises(ValueError, match="entropy_bt"):
    loss_fn(LOGP_BT, jnp.asarray(ADV_BT), GOLDEN.mask_bt, GOLDEN)
  no_ref = testing.make_rollout(correct=[1, 0], length=[3, 2], max_len=3)
  with pytest.raises(ValueError, match="ref_logp_bt"):
    _golden_loss_fn(kl_estimator="k3", kl_coef=0.1)(LOGP_BT, jnp.asarray(ADV_BT),
                                                     no_ref.mask_bt, no_ref)


def test_loss_mask_multiplies_completion_reward_and_keep_masks():
  batch = testing.make_rollout(correct=[1, 0, 1, 1], length=[3, 2, 1, 3], max_len=3)
  reward_out = types.make_reward_output(
      batch, jnp.zeros(4), loss_mask_bt=jnp.array([[1, 0, 1]] * 4, jnp.float32))
  mask_bt = losses.loss_mask(batch, reward_out, keep_b=np.array([1, 1, 0, 0], bool))
  np.testing.assert_array_equal(mask_bt, [[1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]])


# ---- gradients -------------------------------------------------------------------------------

def test_gradient_matches_hand_derived_formula():
  loss_fn = _golden_loss_fn(kl_estimator="k3", kl_coef=0.1)
  grad_bt = jax.jit(jax.grad(lambda lp: loss_fn(lp, jnp.asarray(ADV_BT), GOLDEN.mask_bt,
                                                GOLDEN)[0]))(LOGP_BT)
  # token_mean over 5 tokens: ∂/∂logp = m/5 · [−A·ρ·I(unclipped branch active) + β(1 − ρ_ref)]
  # with ρ_ref = exp(ref − logp) = 1/ρ. Clipped tokens (ρ=1.5 with A>0, ρ=0.7 with A<0) have no
  # policy gradient; the masked token has none at all.
  policy_bt = np.array([[0.0, -1.1, -0.5], [0.0, 1.3, 0.0]])
  kl_bt = 0.1 * (1 - 1 / RATIO_BT)
  want_bt = (policy_bt + kl_bt) * np.asarray(GOLDEN.mask_bt) / 5
  np.testing.assert_allclose(grad_bt, want_bt, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("aggregation", AGGREGATIONS.names())
def test_gradient_matches_finite_differences_float64(aggregation):
  with jax.enable_x64(True):
    # ρ away from the clip edges (0.8, 1.28) and the dual-clip edge (3), mixed-sign advantages,
    # a zero-length row and a partial row.
    ratio_bt = np.array([[0.5, 0.9, 1.1, 1.5], [4.0, 0.7, 1.2, 2.0], [1.0, 1.0, 1.0, 1.0]])
    logp_bt = jnp.asarray(np.log(ratio_bt) - 0.3, jnp.float64)
    old_bt = np.full((3, 4), -0.3)
    ref_bt = np.array([[-0.1, -0.6, 0.2, -0.3]] * 3)
    batch = testing.make_rollout(correct=[1, 0, 0], length=[4, 3, 0], max_len=4,
                                 old_logp=old_bt, ref_logp_bt=ref_bt)
    mask_bt = jnp.asarray(batch.mask_bt, jnp.float64)
    adv_bt = jnp.asarray([[0.7] * 4, [-1.3] * 4, [0.0] * 4], jnp.float64)
    loss_fn = losses.make_loss_fn(
        policy_loss="ppo_clip", aggregation=aggregation, group_size=1,
        policy_loss_kwargs={"eps_low": 0.2, "eps_high": 0.28, "dual_clip_c": 3.0},
        aggregation_kwargs=common.AGGREGATION_DEFAULTS[aggregation],
        kl_estimator="k3", kl_coef=0.05)
    f = lambda lp: loss_fn(lp, adv_bt, mask_bt, batch)[0]
    grad_bt = jax.jit(jax.grad(f))(logp_bt)
    h = 1e-6
    eye_kbt = jnp.eye(12, dtype=jnp.float64).reshape(12, 3, 4)
    f_k = jax.jit(jax.vmap(f))
    fd_bt = ((f_k(logp_bt + h * eye_kbt) - f_k(logp_bt - h * eye_kbt)) / (2 * h)).reshape(3, 4)
    assert grad_bt.dtype == jnp.float64
    np.testing.assert_allclose(grad_bt, fd_bt, rtol=1e-6, atol=1e-9)
    assert np.abs(np.asarray(grad_bt)).max() > 0.01        # not trivially zero


# ---- contracts -------------------------------------------------------------------------------

# Losses with a term besides the RL surrogate: the surrogate contract holds with it off.
SURROGATE_ONLY = {"kdrl": {"kd_coef": 0.0}, "dph_rl": {"pef_threshold": 2.0}}


@pytest.mark.parametrize("name", POLICY_LOSSES.names())
def test_policy_loss_contract(name):
  rng = np.random.default_rng(0)
  batch = testing.with_optional_fields(testing.make_rollout(
      rng.integers(0, 2, 4), [5, 0, 3, 5], max_len=5,
      old_logp=rng.normal(size=(4, 5)).astype(np.float32) - 2))
  logp_bt = jnp.asarray(batch.old_logp_bt + rng.normal(scale=0.1, size=(4, 5)), jnp.float32)
  adv_bt = jnp.asarray(rng.normal(size=(4, 1)) * batch.mask_bt, jnp.float32)
  fn = jax.jit(_policy_loss(name, **SURROGATE_ONLY.get(name, {})))
  loss_bt, aux = fn(logp_bt, adv_bt, batch.mask_bt, batch)
  chex.assert_shape(loss_bt, (4, 5))
  chex.assert_tree_all_finite((loss_bt, aux))
  chex.assert_tree_shape_prefix(aux, (4, 5))
  zero_bt, _ = fn(logp_bt, jnp.zeros_like(adv_bt), batch.mask_bt, batch)
  np.testing.assert_array_equal(zero_bt, np.zeros((4, 5)))      # no advantage, no loss
  # On-policy (ρ = 1) every surrogate's gradient is REINFORCE's, −A per token (values differ:
  # PPO-style losses give −A·ρ, CISPO-style ones −w·A·logp).
  on_grad_bt = jax.grad(lambda lp: fn(lp, adv_bt, batch.mask_bt, batch)[0].sum())(
      batch.old_logp_bt)
  np.testing.assert_allclose(on_grad_bt, -adv_bt, rtol=1e-6)


@pytest.mark.parametrize("name", AGGREGATIONS.names())
def test_aggregation_contract(name):
  rng = np.random.default_rng(1)
  loss_bt = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  mask_bt = testing.make_rollout([1] * 6, [4, 1, 0, 2, 3, 4], max_len=4).mask_bt
  fn = jax.jit(_aggregate(name))
  value = fn(loss_bt, mask_bt)
  chex.assert_shape(value, ())
  chex.assert_tree_all_finite(value)
  perm = np.array([3, 0, 5, 1, 4, 2])                          # order of sequences is irrelevant
  np.testing.assert_allclose(fn(loss_bt[perm], mask_bt[perm]), value, rtol=1e-6)
  want = {"seq_mean_token_sum": 2.0 * 14 / 5,       # 2 · 14 valid tokens / 5 non-empty seqs
          "seq_mean_token_sum_norm": 2.0 * 14 / (5 * 4)}.get(name, 2.0)  # / (B'=5 · T=4)
  np.testing.assert_allclose(fn(jnp.full((6, 4), 2.0), mask_bt), want, rtol=1e-6)


@pytest.mark.parametrize("name", KL_ESTIMATORS.names())
def test_kl_contract(name):
  rng = np.random.default_rng(2)
  logp_bt = jnp.asarray(rng.normal(size=(3, 4)) - 2, jnp.float32)
  fn = jax.jit(functools.partial(KL_ESTIMATORS.get(name), **common.KL_DEFAULTS[name]))
  np.testing.assert_allclose(fn(logp_bt, logp_bt), np.zeros((3, 4)), atol=1e-7)
  kl_bt = fn(logp_bt, logp_bt + jnp.asarray(rng.normal(size=(3, 4)), jnp.float32))
  chex.assert_shape(kl_bt, (3, 4))
  chex.assert_tree_all_finite(kl_bt)
  if name != "k1":                                  # k1 = logp − ref is signed
    assert np.all(np.asarray(kl_bt) >= 0)
