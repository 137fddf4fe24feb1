"""The update consumes the reward's per-token hooks (CEEH): `adv_bonus_bt` shifts the advantage
and `entropy_weight_bt` weights the entropy bonus, on the tiny model."""
import jax
import numpy as np
import pytest

from concise_jax import data, sharding
from concise_jax.train import loop, rollout_step, step
from concise_jax.train import trainer as trainer_lib
from configs import grpo


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_advantage_bonus_and_entropy_weight_reach_the_loss():
  config = grpo.get_config("model=tiny,runlocal")
  config.kl.coef = 0.0                 # no reference forward
  config.loss.entropy_coef = 0.1
  config.aggregation.name = "token_mean"
  model_cfg, params, tokenizer = trainer_lib.load_model(config)
  trainable, frozen, axes = trainer_lib.split_trainable(config, model_cfg, params)
  fns = trainer_lib.build_functions(config, model_cfg, trainable, frozen, axes,
                             sharding.make_mesh(config.mesh.shape))
  examples = data.load_dataset(config.data.dataset, n=config.rollout.prompts_per_step)
  rollout, _, _ = rollout_step.rollout_batch(
      model_cfg, trainable, tokenizer, examples, list(range(len(examples))),
      jax.random.PRNGKey(0), sp=rollout_step.sampling_params(config, tokenizer),
      group_size=config.rollout.group_size, fmt=rollout_step.prompt_format(config),
      check=lambda c, r, k: [i % 3 == 0 for i in range(len(c))])
  state0 = trainer_lib.initial_state(config, fns, trainable, config.data.num_prompts)
  reward_out, _, _ = fns.score(state0.reward_state, rollout)
  reward_out = jax.device_get(reward_out)
  keep_b = np.ones(rollout.length_b.shape, bool)
  mask_bt = np.asarray(rollout.mask_bt)

  def metrics(out):
    state = trainer_lib.initial_state(config, fns, trainable, config.data.num_prompts)
    _, m = fns.update(state, jax.device_put(frozen, fns.frozen_sh),
                      step.UpdateBatch(rollout=rollout, reward_out=out, keep_b=keep_b))
    return jax.device_get(m)

  plain = metrics(reward_out)
  hooked = metrics(reward_out.replace(adv_bonus_bt=0.5 * mask_bt, entropy_weight_bt=2.0 * mask_bt))
  # On-policy ratio is exactly 1, so the clipped surrogate is −A per token and its token mean
  # drops by the (uncapped) bonus 0.5; the weighted entropy term doubles.
  np.testing.assert_allclose(hooked["loss/policy"], plain["loss/policy"] - 0.5, atol=1e-5)
  np.testing.assert_allclose(hooked["loss/entropy"], 2 * plain["loss/entropy"], rtol=1e-5)
  np.testing.assert_allclose(hooked["policy/entropy"], plain["policy/entropy"], rtol=1e-5)
