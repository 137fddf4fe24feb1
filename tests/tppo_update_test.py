"""The T-PPO update on the tiny model: the critic's loss falls toward a known value with either
critic (head on the policy trunk, or a separate copy), and the policy update stays finite."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from concise_jax import models
from concise_jax.models import tiny
from concise_jax.train import tppo_update

CFG = tiny.tiny_config()


def _batch(params):
  """8 rows, every response finished with reward 1: the value of every state is 1."""
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(3, CFG.vocab_size, (8, 6)), jnp.int32)
  mask = (jnp.arange(6)[None, :] < jnp.asarray(rng.integers(2, 7, (8, 1)))).astype(jnp.float32)
  prompt = jnp.asarray(rng.integers(3, CFG.vocab_size, (8, 4)), jnp.int32)
  batch = tppo_update.TppoBatch(prompt_bs=prompt, prompt_mask_bs=jnp.ones_like(prompt),
                                tokens_bt=tokens * mask.astype(jnp.int32), mask_bt=mask,
                                old_logp_bt=jnp.zeros((8, 6)), rewards_b=jnp.ones(8),
                                alive_b=jnp.zeros(8, bool))
  critic = tppo_update.init_critic(CFG, params, "head")
  logp_bt, _ = jax.jit(lambda p, c, b: tppo_update.logp_and_values(CFG, p, c, b))(params, critic,
                                                                                  batch)
  return batch.replace(old_logp_bt=logp_bt * mask)


@pytest.mark.integration  # compiles its own model programs: ~16 s on 2 cores
@pytest.mark.parametrize("critic_mode", ["head", "separate"])
def test_critic_loss_falls_toward_the_known_value(critic_mode):
  params = models.init_params(CFG, jax.random.key(0))
  batch = _batch(params)
  critic = tppo_update.init_critic(CFG, params, critic_mode)
  policy_opt, critic_opt = optax.adam(1e-4), optax.adam(5e-2)
  update = tppo_update.make_update(CFG, policy_opt, critic_opt, advantage="egae",
                                   advantage_options={"lam_policy": 0.95})
  p_state, c_state = policy_opt.init(params), critic_opt.init(critic)
  losses = []
  for _ in range(15):
    params, critic, p_state, c_state, metrics = update(params, critic, p_state, c_state, batch)
    losses.append(float(metrics["loss/value"]))
  assert losses[0] == pytest.approx(0.5, rel=1e-5)     # zero head: ½(0 − 1)² per token
  assert losses[-1] < 0.2 * losses[0], losses
  assert np.isfinite(float(metrics["loss/policy"]))


def test_unknown_critic_mode_is_rejected():
  with pytest.raises(ValueError, match="critic_mode"):
    tppo_update.init_critic(CFG, {}, "shared")


def test_update_takes_advantages_and_targets_from_the_registered_estimator():
  """The update's estimator is the registry's: on a batch with alive rows, `critic_advantage`
  gives exactly `egae_with_targets` of the same values; an unknown name lists the valid ones."""
  from concise_jax import types  # pylint: disable=import-outside-toplevel
  from concise_jax.advantages import gae  # pylint: disable=import-outside-toplevel
  params = models.init_params(CFG, jax.random.key(0))
  batch = _batch(params).replace(alive_b=jnp.asarray([True, False] * 4),
                                 rewards_b=jnp.linspace(-1, 1, 8))
  values = jnp.asarray(np.random.default_rng(3).normal(size=(8, 7)), jnp.float32)
  rollout = tppo_update.as_rollout(batch, values)
  fn = tppo_update.critic_advantage("egae", {"lam_policy": 0.6, "drop_last_n": 1})
  adv, targets, _ = fn(types.make_reward_output(rollout, batch.rewards_b), rollout, batch.mask_bt)
  want_adv, want_targets, _ = gae.egae_with_targets(
      batch.rewards_b, values, batch.mask_bt, batch.mask_bt, batch.alive_b, lam_policy=0.6,
      drop_last_n=1)
  np.testing.assert_allclose(adv, want_adv, rtol=1e-6)
  np.testing.assert_allclose(targets, want_targets, rtol=1e-6)
  with pytest.raises(KeyError, match="valid choices: egae, gae"):
    tppo_update.critic_advantage("grpo")
