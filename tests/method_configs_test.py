"""Every experiment file in configs/ trains two steps on the tiny random model.

The smoke test of the method library: each method's reward, advantage, filter, loss, KL and
budget schedule run together inside the real host loop and jitted update, and produce finite
metrics. Numbers are checked by each method's own golden tests; this checks the wiring.
Every config is validated in the default suite; a few representative ones also train there,
and the rest train in the integration step (each compiles its own update).
"""
import math
import pathlib

import pytest

from concise_jax import config_check
from concise_jax.train import loop

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "common")


def _tiny_two_step_config(name):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  config = module.get_config("model=tiny,runlocal")
  config.train.steps = 2
  config.train.ckpt_every = 2
  config.eval.every = 0
  return config


# Stateful rewards with host features, dynamic sampling with refill, LoRA: the wiring paths.
TRAINED_BY_DEFAULT = {"grpo_lambda", "dapo", "laser_de", "dot", "quickstart"}


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_validates(name):
  assert config_check.validate(_tiny_two_step_config(name)) == []


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in TRAINED_BY_DEFAULT else pytest.mark.integration)
    for n in CONFIG_FILES])
def test_config_trains_two_steps_on_the_tiny_model(name, tmp_path):
  config = _tiny_two_step_config(name)
  assert config_check.validate(config) == []
  result = loop.run(config, str(tmp_path))
  assert result.step == 2 and not result.halted
  for key in ("loss/total", "optim/grad_norm", "rollout/accuracy"):
    assert math.isfinite(result.metrics[key]), (name, key, result.metrics[key])
  assert result.metrics["optim/applied"] in (0.0, 1.0)
