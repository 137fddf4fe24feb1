"""GAE / Extended GAE for T-PPO: a hand-computed trajectory, equality with a plain GAE loop
on complete responses, decoupled λ's, the length-adaptive λ and the value loss."""
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.advantages import gae
from concise_jax.advantages.base import ADVANTAGES, CRITIC_ADVANTAGES, trainer_error


def _hand_case():
  mask = jnp.asarray([[1, 1, 1], [1, 1, 0]], jnp.float32)
  alive = jnp.asarray([False, True])
  values = jnp.asarray([[0.5, 0.6, 0.8, 0.9], [0.2, 0.4, 0.7, 9.0]])
  rewards = gae.outcome_rewards_bt(jnp.asarray([1.0, 5.0]), mask, alive)
  return rewards, values, mask, alive


def test_extended_gae_on_a_hand_computed_trajectory():
  rewards, values, mask, alive = _hand_case()
  np.testing.assert_array_equal(rewards, [[0, 0, 1], [0, 0, 0]])   # alive rows: no reward yet
  adv, targets = gae.gae_bt(rewards, values, mask, alive, gamma=1.0, lam=0.5)
  # finished row: δ = [0.6-0.5, 0.8-0.6, 1-0.8] = [.1, .2, .2]; Â_2 = .2, Â_1 = .2 + .5·.2 = .3,
  #   Â_0 = .1 + .5·.3 = .25 (V(s_3) = 0.9 is never read: the row ended)
  # alive row, bootstrap V(s_2) = 0.7: δ = [.2, .3]; Â_1 = .3, Â_0 = .2 + .5·.3 = .35
  np.testing.assert_allclose(adv, [[0.25, 0.3, 0.2], [0.35, 0.3, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(targets, [[0.75, 0.9, 1.0], [0.55, 0.7, 0.0]], rtol=1e-6)


def test_lambda_one_gamma_one_targets_are_monte_carlo_returns_or_the_bootstrap():
  rewards, values, mask, alive = _hand_case()
  _, targets = gae.gae_bt(rewards, values, mask, alive, gamma=1.0, lam=1.0)
  np.testing.assert_allclose(targets, [[1.0, 1.0, 1.0], [0.7, 0.7, 0.0]], rtol=1e-6)


def _reference_gae(r, v, n, gamma, lam):
  """Textbook GAE over one complete trajectory of n tokens (V after the end = 0)."""
  adv, running = np.zeros(len(r)), 0.0
  for t in reversed(range(n)):
    v_next = v[t + 1] if t + 1 < n else 0.0
    running = r[t] + gamma * v_next - v[t] + gamma * lam * running
    adv[t] = running
  return adv


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_equals_ordinary_gae_when_every_response_finished(gamma):
  rng = np.random.default_rng(0)
  b, t = 5, 7
  length = np.asarray([7, 1, 4, 6, 3])
  mask = (np.arange(t)[None] < length[:, None]).astype(np.float32)
  values = rng.normal(size=(b, t + 1)).astype(np.float32)
  lam_b = np.asarray([1.0, 0.9, 0.5, 0.0, 0.95], np.float32)
  alive = jnp.zeros(b, bool)
  rewards = np.asarray(gae.outcome_rewards_bt(jnp.asarray(rng.normal(size=b), jnp.float32),
                                              jnp.asarray(mask), alive))
  adv, _ = gae.gae_bt(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), alive,
                      gamma=gamma, lam=jnp.asarray(lam_b))
  want = np.stack([_reference_gae(rewards[i], values[i], length[i], gamma, lam_b[i])
                   for i in range(b)])
  np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-6)


def test_decoupled_lambdas_use_their_own_lambda_each():
  rewards, values, mask, alive = _hand_case()
  adv, targets = gae.decoupled_gae_bt(rewards, values, mask, alive, lam_policy=0.5,
                                      lam_critic=1.0)
  np.testing.assert_allclose(adv, gae.gae_bt(rewards, values, mask, alive, lam=0.5)[0])
  np.testing.assert_allclose(targets, gae.gae_bt(rewards, values, mask, alive, lam=1.0)[1])


def test_length_adaptive_lambda():
  lam = gae.lambda_length_b(jnp.asarray([10, 20, 100, 1000, 0]), alpha=0.05)
  np.testing.assert_allclose(lam, [0.0, 0.0, 0.8, 0.98, 0.0], rtol=1e-6)   # 1 - 1/(0.05 l)


def test_drop_last_n_masks_only_the_tail_of_alive_rows():
  mask = jnp.asarray([[1, 1, 1, 1], [1, 1, 1, 0]], jnp.float32)
  out = gae.drop_last_mask_bt(mask, jnp.asarray([False, True]), 2)
  np.testing.assert_array_equal(out, [[1, 1, 1, 1], [1, 0, 0, 0]])
  np.testing.assert_array_equal(gae.drop_last_mask_bt(mask, jnp.asarray([True, True]), 0), mask)


def test_clipped_value_loss_takes_the_larger_of_clipped_and_unclipped_error():
  v, old, target = jnp.asarray([1.0, 0.0, 0.2]), jnp.asarray([0.0, 0.0, 0.0]), jnp.asarray(
      [1.0, 2.0, 0.0])
  # row 0: unclipped 0, clipped (0.5-1)^2 = .25 → .125; row 1: 4 vs (0-2)^2 → 2;
  # row 2: .04 vs (.2-0)^2 = .04 → .02
  np.testing.assert_allclose(gae.clipped_value_loss_bt(v, old, target, clip=0.5),
                             [0.125, 2.0, 0.02], rtol=1e-6)


def test_egae_estimator_reads_values_and_alive_from_the_batch_features():
  """The registry-signature EGAE equals `decoupled_gae_bt` on the hand case, with value targets
  from λ_critic = 1 (Monte-Carlo return / bootstrap) and a loss mask applied to advantages."""
  from concise_jax import types  # pylint: disable=import-outside-toplevel
  _, values, mask, alive = _hand_case()
  rewards_b = jnp.asarray([1.0, 5.0])
  adv, targets, metrics = gae.egae_with_targets(rewards_b, values, mask, mask, alive,
                                                lam_policy=0.5)
  np.testing.assert_allclose(adv, [[0.25, 0.3, 0.2], [0.35, 0.3, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(targets, [[1.0, 1.0, 1.0], [0.7, 0.7, 0.0]], rtol=1e-6)
  assert float(metrics["adv/alive_frac"]) == 0.5
  batch = types.Rollout(
      tokens_bt=jnp.zeros((2, 3), jnp.int32), mask_bt=mask, length_b=jnp.asarray([3, 2]),
      correct_b=jnp.zeros(2, bool), format_ok_b=jnp.ones(2, bool), truncated_b=jnp.zeros(2, bool),
      prompt_index_b=jnp.asarray([0, 1]), old_logp_bt=jnp.zeros((2, 3)),
      features={"values": values, "alive": alive})
  loss_mask = mask.at[0, 0].set(0.0)
  got, got_targets, _ = gae.egae(types.make_reward_output(batch, rewards_b), batch, loss_mask,
                                 group_size=1, lam_policy=0.5)
  np.testing.assert_allclose(got, [[0.0, 0.3, 0.2], [0.35, 0.3, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(got_targets, targets, rtol=1e-6)   # off the policy mask too


@pytest.mark.integration  # eager XLA compiles: ~4 s on 2 cores
def test_egae_length_rules_for_the_adaptive_lambda():
  """α = 0.05: "current" uses each row's length (l = 3 → λ = 0 after clipping, l = 40 → 0.5);
  "batch_mean" gives every row λ of the mean length 21.5."""
  mask = (jnp.arange(40)[None, :] < jnp.asarray([[3], [40]])).astype(jnp.float32)
  values = jnp.zeros((2, 41))
  alive = jnp.asarray([False, True])
  _, _, m_cur = gae.egae_with_targets(jnp.ones(2), values, mask, mask, alive, alpha=0.05)
  _, _, m_mean = gae.egae_with_targets(jnp.ones(2), values, mask, mask, alive, alpha=0.05,
                                       lambda_length="batch_mean")
  np.testing.assert_allclose(m_cur["adv/lambda_policy_mean"], (0.0 + 0.5) / 2, rtol=1e-6)
  np.testing.assert_allclose(m_mean["adv/lambda_policy_mean"], 1 - 1 / (0.05 * 21.5), rtol=1e-6)
  with pytest.raises(ValueError, match="lambda_length"):
    gae.egae_with_targets(jnp.ones(2), values, mask, mask, alive, alpha=0.05,
                          lambda_length="window_end")


# ---- the registered critic estimators ---------------------------------------------------------

def _rollout(mask, values, alive):
  from concise_jax import types  # pylint: disable=import-outside-toplevel
  b, t = mask.shape
  return types.Rollout(
      tokens_bt=jnp.zeros((b, t), jnp.int32), mask_bt=mask, length_b=mask.sum(1).astype(jnp.int32),
      correct_b=jnp.zeros(b, bool), format_ok_b=jnp.ones(b, bool), truncated_b=jnp.zeros(b, bool),
      prompt_index_b=jnp.arange(b), old_logp_bt=jnp.zeros((b, t)),
      features={"values": values, "alive": alive})


def _registered(name, rewards_b, batch, loss_mask, **options):
  from concise_jax import types  # pylint: disable=import-outside-toplevel
  fn = CRITIC_ADVANTAGES.component(name).fn
  return fn(types.make_reward_output(batch, rewards_b), batch, loss_mask, group_size=4, **options)


def test_critic_estimators_are_registered_with_their_needs_and_options():
  assert CRITIC_ADVANTAGES.names() == ["egae", "gae"]
  egae = CRITIC_ADVANTAGES.component("egae")
  assert egae.needs == ("values", "alive") and egae.static == ("group_size",)
  assert {k: o.default for k, o in egae.options.items()} == {
      "gamma": 1.0, "lam_policy": 0.95, "lam_critic": 1.0, "alpha": 0.0,
      "lambda_length": "current", "drop_last_n": 0}
  assert {k: o.default for k, o in CRITIC_ADVANTAGES.component("gae").options.items()} == {
      "gamma": 1.0, "lam": 0.95}
  assert "egae" not in ADVANTAGES and "gae" not in ADVANTAGES   # the GRPO family is unchanged


def test_registered_egae_equals_the_direct_function_with_every_option():
  rng = np.random.default_rng(0)
  lengths = np.asarray([5, 2, 7, 0, 7, 3])
  mask = jnp.asarray(np.arange(7)[None, :] < lengths[:, None], jnp.float32)
  values = jnp.asarray(rng.normal(size=(6, 8)), jnp.float32)
  alive = jnp.asarray([True, False, True, False, False, True])
  rewards_b = jnp.asarray(rng.normal(size=6), jnp.float32)
  loss_mask = mask.at[1, 0].set(0.0)
  options = dict(gamma=0.9, lam_policy=0.7, lam_critic=0.9, alpha=0.1,
                 lambda_length="batch_mean", drop_last_n=2)
  adv, targets, metrics = _registered("egae", rewards_b, _rollout(mask, values, alive),
                                      loss_mask, **options)
  want = gae.egae_with_targets(rewards_b, values, mask, loss_mask, alive, **options)
  np.testing.assert_allclose(adv, want[0], rtol=1e-6)
  np.testing.assert_allclose(targets, want[1], rtol=1e-6)
  assert set(metrics) == set(want[2])
  assert np.all(np.asarray(adv)[0, 3:] == 0) and np.asarray(adv)[0, 2] != 0   # drop_last_n=2


@pytest.mark.parametrize("name", ["egae", "gae"])
def test_registered_estimators_equal_ordinary_gae_when_every_row_finished(name):
  rng = np.random.default_rng(1)
  lengths = np.asarray([6, 3, 1, 5])
  mask = jnp.asarray(np.arange(6)[None, :] < lengths[:, None], jnp.float32)
  values = rng.normal(size=(4, 7)).astype(np.float32)
  rewards_b = rng.normal(size=4).astype(np.float32)
  alive = jnp.zeros(4, bool)
  options = (dict(gamma=0.95, lam_policy=0.8, lam_critic=0.8) if name == "egae"
             else dict(gamma=0.95, lam=0.8))
  adv, targets, _ = _registered(name, jnp.asarray(rewards_b), _rollout(mask, values, alive), mask,
                                **options)
  for i, n in enumerate(lengths):
    r = np.zeros(n)
    r[-1] = rewards_b[i]
    want = _reference_gae(r, values[i], n, 0.95, 0.8)
    np.testing.assert_allclose(np.asarray(adv)[i, :n], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(targets)[i, :n], want + values[i, :n], rtol=1e-5,
                               atol=1e-6)
    assert np.all(np.asarray(adv)[i, n:] == 0) and np.all(np.asarray(targets)[i, n:] == 0)


def test_registered_estimators_on_the_hand_computed_trajectory():
  """The hand case (see `test_extended_gae_on_a_hand_computed_trajectory`) through the registry:
  egae with λ_policy = 0.5, λ_critic = 1; plain gae with λ = 0.5 for both."""
  _, values, mask, alive = _hand_case()
  batch = _rollout(mask, values, alive)
  rewards_b = jnp.asarray([1.0, 5.0])
  adv, targets, _ = _registered("egae", rewards_b, batch, mask, lam_policy=0.5)
  np.testing.assert_allclose(adv, [[0.25, 0.3, 0.2], [0.35, 0.3, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(targets, [[1.0, 1.0, 1.0], [0.7, 0.7, 0.0]], rtol=1e-6)
  adv, targets, _ = _registered("gae", rewards_b, batch, mask, lam=0.5)
  np.testing.assert_allclose(adv, [[0.25, 0.3, 0.2], [0.35, 0.3, 0.0]], rtol=1e-6)
  # targets = A(λ=0.5) + V: [0.75, 0.9, 1.0] and [0.55, 0.7]
  np.testing.assert_allclose(targets, [[0.75, 0.9, 1.0], [0.55, 0.7, 0.0]], rtol=1e-6)


def test_choosing_an_estimator_for_the_wrong_trainer_names_the_valid_choices():
  error = trainer_error("grpo", "tppo")
  assert "no value targets" in error and "valid choices: egae, gae" in error
  error = trainer_error("egae", "grpo")
  assert "only trainer=tppo" in error and "grpo" in error.split("valid choices:")[1]
  assert "egae" not in error.split("valid choices:")[1]
  assert trainer_error("egae", "tppo") is None and trainer_error("rloo", "") is None
  assert "valid choices: egae, gae" in trainer_error("gea", "tppo")
