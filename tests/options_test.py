"""Options defined once (signatures), typed, pruned to the run's components; the compiled update
keyed by exactly the options it reads."""
import copy
import json
import pathlib
import subprocess
import sys
import typing

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from concise_jax import known_names, options, testing, types
from concise_jax.registry import Registry
from concise_jax.models import init_params, tiny as tiny_model
from concise_jax.train import loop, step
from concise_jax.train import trainer as trainer_lib
from concise_jax.train.state import init_train_state
from configs import common, grpo

# Sections whose selected component the update calls (with kl only while kl.coef != 0).
UPDATE_SECTIONS = ("advantage", "loss", "aggregation", "kl")
# Config leaves (outside the components' own options) the update reads, as the spec test
# finds them; everything else (reward, filter, budget, data, eval, verify, checkpointing,
# mesh, model name/dtype, which live in the model config and mesh keys) must not matter.
UPDATE_LEAVES = {
    "advantage.name", "aggregation.name", "kl.coef", "kl.name", "loss.entropy_coef",
    "loss.mask_truncated", "loss.name", "model.lora.rank", "optim.b1", "optim.b2",
    "optim.clip_norm", "optim.eps", "optim.length_buckets", "optim.lr", "optim.micro_batch",
    "optim.num_minibatches",
    "optim.schedule", "optim.warmup_steps", "optim.weight_decay", "rollout.group_size",
    "rollout.steering.path", "rollout.temperature", "teacher.model", "train.logp_chunk",
    "train.ppo_epochs", "train.recompute_old_logp", "train.share_prompt",
}
HEAVY_MODULES = ("orbax.checkpoint", "grain", "tensorflow_datasets", "concise_jax.models",
                 "concise_jax.rollout", "concise_jax.train", "concise_jax.data")


def _config():
  return grpo.get_config("model=tiny,runlocal")


def _flip(value, key: str = ""):
  """A different value of the same type (None placeholders take a number)."""
  if key == "optim.schedule":
    return "cosine" if value != "cosine" else "constant"
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 1
  if isinstance(value, float):
    return value * 2 + 0.5
  if isinstance(value, str):
    return value + "_x"
  if isinstance(value, tuple):
    return value + (value[-1],) if value else (1,)
  if value is None:
    return 3
  raise TypeError(f"{key}: cannot flip {value!r}")


def _leaves(node, prefix=""):
  """Dotted keys of every value in `node`, the components' option sub-dicts excluded."""
  out = []
  for k, v in node.items():
    dotted = prefix + k
    section = prefix.rstrip(".")
    if section in options.SECTIONS and k in options.SECTIONS[section]:
      continue
    out += _leaves(v, dotted + ".") if isinstance(v, ml_collections.ConfigDict) else [dotted]
  return out


def _set(config, dotted, value):
  *path, key = dotted.split(".")
  node = config
  for part in path:
    node = node[part]
  node[key] = value


def _get(config, dotted):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


# --------------------------------------------------------------------------- options

def test_known_names_match_their_owners():
  from concise_jax import data  # pylint: disable=import-outside-toplevel
  from concise_jax.models import config as model_config  # pylint: disable=import-outside-toplevel
  from concise_jax.models import loading  # pylint: disable=import-outside-toplevel
  from concise_jax.train import lora, optim  # pylint: disable=import-outside-toplevel
  assert sorted(known_names.MODELS) == sorted(loading.KNOWN_MODELS)
  assert list(known_names.TASKS) == data.TASKS.names()
  assert list(known_names.DATASET_KINDS) == data.sources.dataset_kinds()
  assert sorted(known_names.LORA_TARGETS) == sorted(lora.TARGETS)
  assert list(known_names.LR_SCHEDULES) == optim.SCHEDULES.names()
  assert known_names.REMAT_POLICIES == model_config.REMAT_POLICIES


def test_sections_are_typed_from_the_annotations():
  config = common.base_config()
  assert config.reward.dler.get_ref("max_len").get_type() is int            # int | None
  assert config.loss.ppo_clip.get_ref("dual_clip_c").get_type() is float    # float | None
  assert config.budget.tlts.get_ref("start").get_type() is float
  config.budget.tlts.start = 64                                            # int into float: ok
  assert config.budget.tlts.start == 64.0
  for bad in ("abc", 2.5):
    with pytest.raises(TypeError, match="max_len"):
      config.reward.dler.max_len = bad
  config.reward.da_dler.thresholds = (0.3, 0.6)                            # tuples stay settable
  assert options.errors(config) == []


def test_literal_options_accept_only_their_values():
  registry = Registry("test component")

  @registry.register("mode_demo")
  def mode_demo(x, *, mode: typing.Literal["min", "mean"] = "min", cap: int | None = None):
    return x, mode, cap

  option = registry.component("mode_demo").options["mode"]
  assert options._is_instance("mean", option.type)         # pylint: disable=protected-access
  assert not options._is_instance("max", option.type)      # pylint: disable=protected-access
  assert options._type_name(option) == "one of 'min', 'mean'"  # pylint: disable=protected-access
  assert options._parse("mean", option) == "mean"          # pylint: disable=protected-access


def test_budget_options_include_a_per_prompt_budget_s_update_options():
  assert list(options.component_options("budget", "palu")) == [
      "target_accuracy", "quantile", "min_budget"]
  assert list(options.component_options("budget", "tlts")) == ["start", "gamma", "period",
                                                               "floor", "linear_steps"]


def test_resolve_keeps_the_selected_variant_only_and_is_idempotent():
  config = _config()
  config.reward.name = "dler"                 # as --config.reward.name=dler
  config.reward.dler.max_len = 12             # as --config.reward.dler.max_len=12
  config.lock()
  run = options.resolve(config)
  assert run.is_locked and "grpo_lambda" in config.reward
  assert run.reward.to_dict() == {"name": "dler", "dler": {"max_len": 12}}
  assert run.kl.to_dict() == {"name": "k3", "coef": 0.001,
                              "k3": {"log_ratio_clamp": 20.0, "value_clamp": 10.0}}
  assert sorted(run.budget.keys()) == ["name", "none", "prompt_template"]
  assert options.resolve(run) == run
  assert options.errors(run) == []


def test_plain_grpo_config_json_keeps_only_the_selected_variants():
  config = grpo.get_config()
  full = json.loads(config.to_json())
  run = json.loads(options.resolve(config).to_json())
  unselected = sum(options.count_leaves(full[section][name])
                   for section in options.SECTIONS for name in full[section]
                   if isinstance(full[section][name], dict) and name != full[section]["name"])
  assert options.count_leaves(run) == options.count_leaves(full) - unselected
  assert options.count_leaves(run) < options.count_leaves(full) / 2.5   # measured: 262 → 90


def test_override_errors_name_key_type_and_value():
  config = _config()
  assert options.override_error(config, "reward.dler.max_len", "100") is None
  assert options.override_error(config, "reward.dler.max_len", "None") is None
  assert options.override_error(config, "reward.da_dler.caps", "(300,200)") is None
  assert options.override_error(config, "reward.dler.max_len", "abc") == (
      "config.reward.dler.max_len='abc': must be int or None")
  assert options.override_error(config, "reward.dler.max_len", "1.5") == (
      "config.reward.dler.max_len='1.5': must be int or None")
  assert options.override_error(config, "loss.cispo.cap_mode", "abs_max") is None
  assert options.override_error(config, "optim.lr", "abc") is None     # not a component option


@pytest.mark.integration  # a fresh interpreter that imports the config stack: ~7 s on 2 cores
def test_config_check_does_not_import_the_training_stack():
  code = ("import json, sys; import concise_jax.config_check, configs.common; "
          f"print(json.dumps([sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules), "
          "'concise_jax.eval' in sys.modules]))")
  heavy, via_eval = json.loads(subprocess.run(
      [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
      cwd=pathlib.Path(__file__).resolve().parent.parent).stdout)
  assert "concise_jax.train" not in heavy
  if via_eval:
    pytest.xfail("rewards/reflection.py still imports concise_jax.eval (being removed)")
  assert heavy == []


# --------------------------------------------------------------------------- update spec

def _spec(config):
  return step.UpdateSpec.from_config(config)


@pytest.mark.parametrize("section", [
    pytest.param(s, marks=pytest.mark.integration) if s == "reward" else s
    for s in options.SECTIONS])
def test_every_component_option_changes_the_spec_iff_the_update_reads_it(section):
  registry = options.SECTIONS[section]
  for variant in registry.names():
    config = _config()
    config[section].name = variant
    base = _spec(config)
    for key, value in config[section][variant].items():
      flipped = copy.deepcopy(config)
      flipped[section][variant][key] = _flip(value, key)
      assert (_spec(flipped) != base) == (section in UPDATE_SECTIONS), (section, variant, key)
    # Another variant's options never matter: the program binds the selected one only.
    flipped = copy.deepcopy(config)
    for other in registry.names():
      if other != variant:
        for key, value in config[section][other].items():
          flipped[section][other][key] = _flip(value, key)
    assert _spec(flipped) == base, (section, variant)


def test_kl_options_matter_only_with_a_kl_term():
  config = _config()
  config.kl.coef = 0.0
  flipped = copy.deepcopy(config)
  flipped.kl.k3.value_clamp = 3.0
  flipped.kl.name = "k2"
  assert _spec(flipped) == _spec(config)


def test_every_config_leaf_changes_the_spec_iff_the_update_reads_it():
  config = _config()
  base = _spec(config)
  relevant = set()
  for dotted in _leaves(config):
    flipped = copy.deepcopy(config)
    value = _get(config, dotted)
    if dotted.endswith(".name") and dotted.split(".")[0] in options.SECTIONS:
      value = next(n for n in options.SECTIONS[dotted.split(".")[0]].names() if n != value)
    else:
      value = _flip(value, dotted)
    _set(flipped, dotted, value)
    if _spec(flipped) != base:
      relevant.add(dotted)
  assert relevant == UPDATE_LEAVES


def test_run_length_and_lora_alpha_matter_only_when_read():
  config = _config()
  longer = copy.deepcopy(config)
  longer.train.steps += 10
  assert _spec(longer) == _spec(config)              # constant lr: no total steps
  config.optim.schedule = longer.optim.schedule = "cosine"
  assert _spec(longer) != _spec(config)              # cosine decays over the run
  config.model.lora.rank = 4
  alpha = copy.deepcopy(config)
  alpha.model.lora.alpha = 8.0
  assert _spec(alpha) != _spec(config)


@pytest.mark.integration
def test_constant_schedule_ignores_the_run_length():
  from concise_jax.train import optim  # pylint: disable=import-outside-toplevel
  for name in step.SCHEDULES_WITHOUT_TOTAL:
    short, long = (optim.SCHEDULES.get(name)(1e-3, 5, n) for n in (10, 1000))
    steps = jnp.arange(0, 2000, 7)
    np.testing.assert_array_equal(jax.vmap(short)(steps), jax.vmap(long)(steps))


# --------------------------------------------------------------------------- lowered program

@pytest.fixture(scope="module")
def tiny():
  config = _config()
  model_cfg = tiny_model.tiny_config(remat=config.model.remat)
  params = jax.eval_shape(lambda k: init_params(model_cfg, k), jax.random.PRNGKey(0))  # lower only
  b, t, s = 16, 8, 4
  rollout = testing.make_rollout([1, 0] * (b // 2), [t, t // 2] * (b // 2), max_len=t,
                                 group_size=config.rollout.group_size,
                                 prompt_tokens_bs=np.ones((b, s), np.int32),
                                 prompt_mask_bs=np.ones((b, s), np.float32))
  reward_out = types.make_reward_output(rollout, rollout.correct_b.astype(jnp.float32))
  batch = step.UpdateBatch(rollout=rollout, reward_out=reward_out, keep_b=jnp.ones(b, bool))
  return model_cfg, params, batch


def _lowered(tiny, config) -> str:
  model_cfg, params, batch = tiny
  spec = _spec(config)
  trainable, frozen, _ = trainer_lib.split_trainable(config, model_cfg, params)
  tx, schedule = spec.optimizer()
  update = step.make_update_step(spec, model_cfg, tx, schedule)
  state = jax.eval_shape(lambda p: init_train_state(p, tx), trainable)
  return jax.jit(update).lower(state, frozen, batch).as_text()


# One option per update section, two the update reads elsewhere, and three it must not read.
LOWERING_CASES = [
    ("advantage.grpo.eps", 1e-3),
    ("loss.ppo_clip.eps_high", 0.28),
    ("aggregation.name", "seq_mean_token_sum"),
    ("kl.k3.value_clamp", 5.0),
    ("optim.lr", 2e-3),
    ("train.ppo_epochs", 2),
    ("reward.grpo_lambda.top_fraction", 0.25),
    ("train.steps", 50),
    ("rollout.top_p", 0.9),
]


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_lowered_update_changes_iff_the_spec_does(tiny):
  config = _config()
  base_spec, base_text = _spec(config), _lowered(tiny, config)
  for dotted, value in LOWERING_CASES:
    flipped = copy.deepcopy(config)
    _set(flipped, dotted, value)
    spec_changed = _spec(flipped) != base_spec
    assert (_lowered(tiny, flipped) != base_text) == spec_changed, dotted
    assert spec_changed == (dotted.split(".")[0] not in ("reward", "rollout")
                            and dotted != "train.steps"), dotted
