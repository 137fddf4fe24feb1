"""Steered rollouts in training and evaluation: off-policy log-probs, config, eval runner."""
import functools

import jax
import numpy as np
import pytest

from concise_jax import data, steering
from concise_jax.eval import runner
from concise_jax.models import tiny
from concise_jax.train import rollout_step, step
from concise_jax.verify import Verifier
from configs import common, grpo_lambda


def _vector_file(tmp_path, extra=None) -> str:
  cfg = tiny.tiny_config()
  v = np.asarray(jax.random.normal(jax.random.key(7), (cfg.d_model,)))
  path = str(tmp_path / "tiny_l0.safetensors")
  steering.save(steering.SteeringVector(vector_d=v, layer=0, model="tiny", extra=extra or {}),
                path)
  return path


def _any_digit(completions, references, kinds):
  del references, kinds
  return [any(ch.isdigit() for ch in c) for c in completions]


def test_config_defaults_are_unsteered():
  config = common.base_config()
  assert config.rollout.steering.path == "" and config.rollout.steering.rule == "last"
  assert rollout_step.steering_from_config(config) is None


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_steered_rollout_records_the_steered_sampler_logp(tmp_path):
  cfg, params, tok = tiny.load_tiny(0)
  config = common.base_config()
  config.rollout.steering.path = _vector_file(tmp_path)
  config.rollout.steering.strength = 6.0
  steer = rollout_step.steering_from_config(config)
  examples = data.load_dataset("task:add_1digit", n=2)
  sp = rollout_step.sampling_params(config, tok).__class__(
      max_new_tokens=8, temperature=0.7, eos_ids=tuple(tok.eos_ids), pad_id=tok.pad_id)
  fmt = rollout_step.PromptFormat(max_prompt_tokens=32)
  run = functools.partial(rollout_step.rollout_batch, cfg, params, tok, examples, [0, 1],
                          jax.random.key(0), sp=sp, group_size=2, fmt=fmt, check=_any_digit)
  steered, _, _ = run(steering=steer)
  plain, _, _ = run()
  assert (steered.old_logp_bt != plain.old_logp_bt).any()   # steering changed the sampler
  zero, _, _ = run(steering=steer.replace(scale=np.float32(0.0)))
  np.testing.assert_array_equal(zero.tokens_bt, plain.tokens_bt)
  np.testing.assert_array_equal(zero.old_logp_bt, plain.old_logp_bt)


@pytest.mark.integration  # compiles its own model programs: ~8 s on 2 cores
def test_eval_runner_steering(tmp_path):
  policy = runner.load_policy("tiny")
  examples = runner.load_examples("task:add_1digit", 3, 0)
  base = runner.EvalSettings(max_new_tokens=6, batch_size=4)
  path = _vector_file(tmp_path, extra={"calibration_strength": "0"})
  results = {}
  with Verifier(num_workers=1) as verifier:
    for name, settings in (("plain", base),
                           ("file_strength_0", runner.EvalSettings(**{**vars(base),
                                                                      "steering": path})),
                           ("strong", runner.EvalSettings(**{**vars(base), "steering": path,
                                                             "steering_strength": 50.0}))):
      records, _ = runner.evaluate_dataset(policy, examples, settings, verifier, progress=False)
      results[name] = [r["greedy"]["text"] for r in records]
  assert results["file_strength_0"] == results["plain"]   # calibrated strength read: 0
  assert results["strong"] != results["plain"]


def test_load_steering_needs_a_strength(tmp_path):
  settings = runner.EvalSettings(steering=_vector_file(tmp_path))
  with pytest.raises(ValueError, match="strength"):
    runner.load_steering(settings)
  assert runner.load_steering(runner.EvalSettings()) is None


@pytest.mark.integration
def test_steered_update_uses_sampler_logp_not_its_own(tmp_path):
  """With rollout.steering set the update keeps the steered sampler's log-probs as old
  log-probs: the ratio is pi_theta / pi_steered (not 1, as the on-policy shortcut would give)
  and equals a run that is handed those old log-probs with recomputation off."""
  from concise_jax import sharding  # pylint: disable=import-outside-toplevel
  from concise_jax.train import loop  # pylint: disable=import-outside-toplevel
  from concise_jax.train import trainer as trainer_lib

  def build(config):
    model_cfg, params, tok = trainer_lib.load_model(config)
    trainable, frozen, axes = trainer_lib.split_trainable(config, model_cfg, params)
    fns = trainer_lib.build_functions(config, model_cfg, trainable, frozen, axes,
                               sharding.make_mesh(config.mesh.shape))
    state = trainer_lib.initial_state(config, fns, trainable, config.data.num_prompts)
    return model_cfg, tok, fns, jax.device_put(frozen, fns.frozen_sh), state

  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.rollout.steering.path = _vector_file(tmp_path)
  config.rollout.steering.strength = 6.0
  model_cfg, tok, fns, frozen, state = build(config)
  examples = data.load_dataset(config.data.dataset, n=config.rollout.prompts_per_step)
  params = fns.model_params(state.params, frozen)
  rollout, _, _ = rollout_step.rollout_batch(
      model_cfg, params, tok, examples, list(range(len(examples))), jax.random.key(3),
      sp=rollout_step.sampling_params(config, tok), group_size=config.rollout.group_size,
      fmt=rollout_step.prompt_format(config), check=_any_digit,
      steering=rollout_step.steering_from_config(config))
  reward_out, _, _ = fns.score(state.reward_state, rollout)
  batch = step.UpdateBatch(rollout=rollout, reward_out=jax.device_get(reward_out),
                           keep_b=np.ones(rollout.length_b.shape, bool))
  policy_logp, _ = jax.jit(functools.partial(
      step._sequence_logp, model_cfg, temperature=step.logp_temperature(config),
      chunk=config.train.logp_chunk))(params, step._sequences(rollout))
  m = rollout.mask_bt > 0
  ratio = np.exp(np.asarray(policy_logp) - rollout.old_logp_bt)[m]
  assert np.abs(ratio - 1).max() > 1e-3                   # steered samples are off-policy
  _, metrics = fns.update(state, frozen, batch)
  assert float(metrics["train/sampler_logp_gap"]) == 0.0  # old log-probs = the sampler's
  np.testing.assert_allclose(float(metrics["policy/ratio"]), ratio.mean(), rtol=1e-4)
