"""The update fills teacher log-probs (KDRL: a second tiny model; DPH-RL: the initial policy)
and applies the overlong (truncation) mask; synthetic rollouts on the tiny model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import sharding, testing, types
from concise_jax.train import loop, step
from concise_jax.train import trainer as trainer_lib
from configs import dapo, dph_rl, kdrl


def _run_update(config, *, truncated):
  """One update on a fixed synthetic batch; returns (frozen keys, metrics)."""
  model_cfg, params, _ = trainer_lib.load_model(config)
  trainable, frozen, axes = trainer_lib.split_trainable(config, model_cfg, params)
  mesh = sharding.make_mesh(config.mesh.shape)
  fns = trainer_lib.build_functions(config, model_cfg, trainable, frozen, axes, mesh)
  state = trainer_lib.initial_state(config, fns, trainable, config.data.num_prompts)
  b, t = config.rollout.prompts_per_step * config.rollout.group_size, 8
  correct = np.tile([1, 0, 1, 1], b // 4)
  rollout = testing.make_rollout(
      correct=correct, length=np.where(truncated, t, [5, 8, 3, 6] * (b // 4)), max_len=t,
      truncated=np.full(b, truncated), group_size=config.rollout.group_size,
      prompt_tokens_bs=np.full((b, 4), 7, np.int32), prompt_mask_bs=np.ones((b, 4), np.float32))
  batch = step.UpdateBatch(rollout=rollout,
                           reward_out=types.make_reward_output(rollout, jnp.asarray(correct)),
                           keep_b=np.ones(b, bool))
  _, metrics = fns.update(state, jax.device_put(frozen, fns.frozen_sh), batch)
  return sorted(frozen), jax.device_get(metrics)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_kdrl_teacher_is_a_separate_model_with_a_nonzero_kd_term():
  keys, metrics = _run_update(kdrl.get_config("model=tiny,runlocal"), truncated=False)
  assert keys == ["teacher"]
  # a differently seeded tiny teacher disagrees with the student: k2 > 0 on wrong rows
  assert np.isfinite(metrics["policy/kd"]) and metrics["policy/kd"] > 1e-3
  assert np.isfinite(metrics["loss/total"])


@pytest.mark.integration  # compiles its own model programs: ~19 s on 2 cores
def test_dph_rl_initial_policy_teacher_matches_the_student_before_any_step():
  keys, metrics = _run_update(dph_rl.get_config("model=tiny,runlocal"), truncated=False)
  assert keys == ["teacher"]
  # π_0 is the current policy at step 0: log u = 0, so the divergence is 0 on every token
  np.testing.assert_allclose(metrics["policy/divergence"], 0.0, atol=1e-5)
  assert metrics["policy/pef"] == 0                  # groups [1, 0, 1, 1]: no D_pef group


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_overlong_filtering_removes_truncated_samples_from_the_loss():
  config = dapo.get_config("model=tiny,runlocal")
  config.loss.mask_truncated = True
  _, metrics = _run_update(config, truncated=True)     # every sample hit the cap
  assert metrics["loss/num_tokens"] == 0
  assert metrics["optim/applied"] == 0                 # nothing to learn from: no step
  config.loss.mask_truncated = False                 # the switch is what removed them
  _, metrics = _run_update(config, truncated=True)
  assert metrics["loss/num_tokens"] > 0
