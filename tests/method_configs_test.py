"""Every experiment file in configs/ is wired up on the tiny random model.

The smoke test of the method library. Default suite, for every config: it validates, and its
reward, group filter and budget schedule run (jitted, as the trainer runs them) on a synthetic
rollout. Its update is lowered (traced to StableHLO, not compiled) on the batch they produce,
so a method whose loss, advantage or KL does not fit the update fails in seconds: two
representative configs by default (LoRA adapters; a stateful reward with a host feature and
monitor refresh), every config in the integration step, where every config also trains two
steps end to end (each compiles its own update and sampler). Numbers are checked by each
method's own golden tests; this checks the wiring.
"""
import functools
import math
import pathlib

import jax
import numpy as np
import pytest

from concise_jax import config_check, testing, train, types
from concise_jax.train import step

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
# T-PPO configs run their own trainer (`train.tppo_loop`, tested in tppo_loop_test), not
# `train.make_trainer`'s group update.
OWN_TRAINER = {"tppo"}
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py")
                      if p.stem != "common" and p.stem not in OWN_TRAINER)

# laser_de: a stateful reward fed by a host feature (repetition) and the monitor-set band
# refresh. quickstart (LoRA adapters + GRPO-λ, ~9 s on 2 cores) is integration; DAPO's refill
# loop is unit-tested in filters_test; its end-to-end run (several rollout batches per step) is
# integration.
LOWERED_BY_DEFAULT = {"laser_de"}


def _tiny_two_step_config(name):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  config = module.get_config("model=tiny,runlocal")
  config.train.steps = 2
  config.train.ckpt_every = 2
  config.eval.every = 0
  return config


def _build(config):
  """(jitted functions, step-0 state, frozen params on the mesh) of the public trainer."""
  with train.make_trainer(config) as trainer:
    return trainer.fns, trainer.state, trainer.frozen


def _synthetic_rollout(config, prompt_len: int = 12, seed: int = 0) -> types.Rollout:
  """A batch of P·G rows shaped like the trainer's, with every optional host field filled.

  Lengths span 1..T with every third row cut off at the cap and alternate rows correct, so the
  group statistics of every reward see mixed groups.
  """
  c = config.rollout
  num_rows, width = c.prompts_per_step * c.group_size, c.max_new_tokens
  rng = np.random.default_rng(seed)
  length_b = rng.integers(1, width + 1, num_rows)
  length_b[::3] = width
  mask_bt = (np.arange(width)[None] < length_b[:, None]).astype(np.float32)
  on = lambda x_bt: (x_bt * mask_bt).astype(np.float32)
  return testing.make_rollout(
      correct=np.arange(num_rows) % 2 == 0, length=length_b, max_len=width,
      format_ok=rng.random(num_rows) < 0.8, group_size=c.group_size,
      old_logp=on(-rng.random((num_rows, width))),
      prompt_tokens_bs=np.full((num_rows, prompt_len), 7, np.int32),
      prompt_mask_bs=np.ones((num_rows, prompt_len), np.float32),
      features={   # every host / sampler need a component may declare
          "entropy": on(rng.random((num_rows, width))),
          "think_mask": on(np.arange(width)[None] < length_b[:, None] // 2),
          "reflection_count": rng.integers(0, 100, num_rows).astype(np.int32),
          "repetitive": np.arange(num_rows) % 5 == 0,
          "redundant_mask": on(rng.random((num_rows, width)) < 0.2),
          "cut_length": np.maximum(length_b // 2, 1).astype(np.int32),
          "cut_correct": np.arange(num_rows) % 3 == 0})


@functools.lru_cache(maxsize=None)
def _scored(name):
  """(config, functions, state, frozen, budget_p, update batch, reward state, reward metrics)."""
  config = _tiny_two_step_config(name)
  fns, state, frozen = _build(config)
  rollout = _synthetic_rollout(config)
  reward_state = jax.device_get(state.reward_state)
  index_p = np.arange(config.rollout.prompts_per_step, dtype=np.int32)
  budget_p = np.asarray(fns.budget(reward_state, index_p))
  if config.budget.prompt_template:   # L1: the budget is stated in the prompt, as the host does
    rollout = rollout.replace(budget_b=np.repeat(budget_p, config.rollout.group_size))
  reward_out, new_reward_state, metrics = fns.score(reward_state, rollout)
  keep_b = np.asarray(fns.keep(rollout, reward_out))
  batch = step.UpdateBatch(rollout=rollout, reward_out=jax.device_get(reward_out), keep_b=keep_b)
  return (config, fns, state, frozen, budget_p, batch, jax.device_get(new_reward_state),
          jax.device_get(metrics))


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_validates(name):
  assert config_check.validate(_tiny_two_step_config(name)) == []


@pytest.mark.parametrize("name", [  # compiles its own model programs: ~10 s on 2 cores
    pytest.param(n, marks=pytest.mark.integration) if n == "quickstart" else n
    for n in CONFIG_FILES])
def test_reward_filter_and_budget_run_on_a_synthetic_rollout(name):
  config, _, state, _, budget_p, batch, new_reward_state, metrics = _scored(name)
  p, g, t = (config.rollout.prompts_per_step, config.rollout.group_size,
             config.rollout.max_new_tokens)
  assert budget_p.shape == (p,) and np.all((1 <= budget_p) & (budget_p <= t)), budget_p
  if config.budget.name == "none":
    np.testing.assert_array_equal(budget_p, t)
  out = batch.reward_out
  assert out.rewards_b.shape == (p * g,) and np.all(np.isfinite(out.rewards_b))
  assert out.loss_mask_bt.shape == (p * g, t)
  assert np.all((0.0 <= out.loss_mask_bt) & (out.loss_mask_bt <= 1.0))
  assert batch.keep_b.shape == (p * g,) and batch.keep_b.dtype == bool
  keep_pg = batch.keep_b.reshape(p, g)
  assert np.all(keep_pg == keep_pg[:, :1]), keep_pg   # a group filter keeps whole groups
  for key, value in metrics.items():
    assert np.all(np.isfinite(value)), (key, value)
  # The reward memory keeps its dataset-sized shapes (resume and sharding rely on it).
  before = jax.tree.map(lambda x: (np.shape(x), np.asarray(x).dtype), state.reward_state)
  after = jax.tree.map(lambda x: (np.shape(x), np.asarray(x).dtype), new_reward_state)
  assert before == after


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in LOWERED_BY_DEFAULT else pytest.mark.integration)
    for n in CONFIG_FILES])
def test_update_lowers_on_the_scored_batch(name):
  _, fns, state, frozen, _, batch, _, _ = _scored(name)
  lowered = fns.update.lower(state, frozen, batch)
  state_out, metrics_out = lowered.out_info
  assert jax.tree.structure(state_out) == jax.tree.structure(state)
  for key in ("loss/total", "optim/grad_norm", "optim/applied", "train/nonfinite"):
    assert metrics_out[key].shape == (), key


@pytest.mark.integration   # ~1 min per config here; the default suite lowers the update instead
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_trains_two_steps_on_the_tiny_model(name, tmp_path):
  config = _tiny_two_step_config(name)
  assert config_check.validate(config) == []
  result = train.run(config, str(tmp_path))
  assert result.step == 2 and not result.halted
  for key in ("loss/total", "optim/grad_norm", "rollout/accuracy"):
    assert math.isfinite(result.metrics[key]), (name, key, result.metrics[key])
  assert result.metrics["optim/applied"] in (0.0, 1.0)
