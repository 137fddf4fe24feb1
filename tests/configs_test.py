"""Every config file loads and validates; bad names and keys fail with the valid choices."""
import pathlib

import pytest

from concise_jax import config_check, options
from configs import common

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "common")


def _load(name, arg=None):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  return module.get_config(arg)


@pytest.mark.parametrize("arg", [None, "model=tiny,runlocal", "runlocal"])
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_loads_and_validates(name, arg):
  config = _load(name, arg)
  assert config_check.validate(config) == []
  assert config.rollout.max_prompt_tokens > 0 and config.train.steps > 0


def test_expected_config_files_exist():
  assert {"grpo", "grpo_lambda", "kimi"} <= set(CONFIG_FILES)


def test_base_config_has_every_registered_variant_with_its_signature_defaults():
  config = common.base_config()
  for section, registry in config_check.NAMED_SECTIONS.items():
    for name in registry.names():
      defaults = {k: o.default for k, o in options.component_options(section, name).items()}
      assert dict(config[section][name]) == defaults, (section, name)
    assert config[section].name in registry
  assert dict(config.reward.dler) == {"max_len": None}
  assert config.reward.dler.get_ref("max_len").get_type() is int
  assert dict(config.budget.palu) == {"target_accuracy": 0.5, "quantile": 0.5, "min_budget": 8}


def test_experiments_differ_only_in_the_reward():
  base, lam, kimi = _load("grpo"), _load("grpo_lambda"), _load("kimi")
  assert (base.reward.name, lam.reward.name, kimi.reward.name) == (
      "correctness", "grpo_lambda", "kimi_length")
  for other in (lam, kimi):
    for section in ("advantage", "loss", "aggregation", "kl", "optim", "rollout", "train"):
      assert other[section] == base[section], section


def test_unknown_names_are_reported_with_valid_choices():
  config = _load("grpo", "model=tiny,runlocal")
  config.reward.name = "shortest"
  config.aggregation.name = "token_sum"
  config.optim.schedule = "linear"
  config.data.dataset = "task:add_9digit"
  config.model.lora.rank = 4
  config.model.lora.targets = "w_q,attn"
  config.model.name = "gpt-5"
  errors = "\n".join(config_check.validate(config))
  for expected in ("unknown reward 'shortest'; valid choices: arlcp, ceeh, correctness,",
                   "unknown loss aggregation 'token_sum'", "seq_mean_token_mean",
                   "unknown lr schedule 'linear'; valid choices: constant, cosine",
                   "unknown task 'add_9digit'", "add_1digit",
                   "unknown LoRA target(s) ['attn']", "w_gate",
                   "unknown model 'gpt-5'", "smollm2-135m-instruct"):
    assert expected in errors, expected


def test_batch_arithmetic_is_checked_before_launch():
  config = _load("grpo", "model=tiny,runlocal")
  config.optim.micro_batch = 5
  assert any("micro_batch=5" in e for e in config_check.validate(config))
  config.optim.num_minibatches = 3
  assert any("num_minibatches=3" in e for e in config_check.validate(config))


def test_unknown_override_key_lists_the_valid_keys():
  config = _load("grpo")
  assert config_check.unknown_override(config, "optim.lr") is None
  message = config_check.unknown_override(config, "optim.lrr")
  assert "'config.optim.lrr'" in message and "lr, micro_batch" in message
  message = config_check.unknown_override(config, "reward.grpo_lambda.weight")
  assert "length_weight" in message
  assert config_check.override_keys(["--workdir=x", "--config.a.b=1", "--config.c", "2"]) == [
      "a.b", "c"]


def test_unknown_config_arg_fails():
  with pytest.raises(KeyError, match="runlocal"):
    _load("grpo", "model=tiny,fast")
  with pytest.raises(KeyError, match="smollm2, tiny"):
    _load("kimi", "model=llama")
