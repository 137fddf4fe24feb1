"""Range, type and relation checks: each error names the key, the bad value and the valid range."""
import ml_collections
import pytest

from concise_jax import config_check
from configs import grpo


def _config(**overrides):
  config = grpo.get_config("model=tiny,runlocal")
  for dotted, value in overrides.items():
    *path, key = dotted.split("__")
    node = config
    for part in path:
      node = node[part]
    node[key] = value
  return config


@pytest.mark.parametrize("key, value, expected", [
    ("train__ckpt_every", 0, "config.train.ckpt_every=0: must be an integer in [1, inf)"),
    ("train__keep_ckpts", 0, "config.train.keep_ckpts=0: must be an integer in [1, inf)"),
    ("train__steps", -1, "config.train.steps=-1: must be an integer in [1, inf)"),
    ("rollout__max_new_tokens", 0,
     "config.rollout.max_new_tokens=0: must be an integer in [1, inf)"),
    ("rollout__max_prompt_tokens", 0,
     "config.rollout.max_prompt_tokens=0: must be an integer in [1, inf)"),
    ("rollout__group_size", 0, "config.rollout.group_size=0: must be an integer in [1, inf)"),
    ("rollout__temperature", -0.5, "config.rollout.temperature=-0.5: must be a number in [0, inf)"),
    ("rollout__top_p", 0.0, "config.rollout.top_p=0.0: must be a number in (0, 1]"),
    ("rollout__top_p", 1.5, "config.rollout.top_p=1.5: must be a number in (0, 1]"),
    ("optim__lr", -1e-3, "config.optim.lr=-0.001: must be a number in (0, inf)"),
    ("optim__micro_batch", -1, "config.optim.micro_batch=-1: must be an integer in [0, inf)"),
    ("optim__b2", 1.0, "config.optim.b2=1.0: must be a number in [0, 1)"),
    ("train__on_bad_ckpt", "ignore",
     "config.train.on_bad_ckpt='ignore': valid choices: fallback, stop"),
    ("data__bad_rows", "skip", "config.data.bad_rows='skip': valid choices: error, drop"),
])
def test_out_of_range_value_is_named_with_its_range(key, value, expected):
  assert config_check.validate(_config(**{key: value})) == [expected]


@pytest.mark.parametrize("key, value, fragment", [
    ("rollout__group_size", 1, "config.rollout.group_size=1: advantage 'grpo' compares each "
                               "sample with its group, so it needs group_size >= 2"),
    ("rollout__temperature", 0.0, "config.rollout.temperature=0 (greedy)"),
    ("reward__dler__max_len", 64, "config.reward.dler.max_len=64: must be in (0, "
                                  "rollout.max_new_tokens=16]"),
    ("optim__micro_batch", 3, "config.optim.micro_batch=3 must divide the minibatch of 16 rows"),
    # Groups of 4: no length lies more than 3 / 2 = 1.5 deviations above the mean.
    ("reward__name", "dot", "config.reward.dot.alpha=3.0: DOT cuts lengths more than alpha "
                            "standard deviations above their group's mean, but in a group of "
                            "rollout.group_size=4 none lies more than (G-1)/sqrt(G) = 1.50"),
])
def test_relations_between_options(key, value, fragment):
  errors = config_check.validate(_config(**{key: value}))
  assert len(errors) == 1 and errors[0].startswith(fragment), errors


def test_group_free_advantage_accepts_one_sample_per_prompt():
  assert config_check.validate(_config(rollout__group_size=1, advantage__name="reinforce_pp",
                                       optim__micro_batch=4)) == []


def test_dot_alpha_just_below_the_largest_possible_deviation_is_accepted():
  assert config_check.validate(_config(reward__name="dot", reward__dot__alpha=1.49)) == []
  assert len(config_check.validate(_config(reward__name="dot", reward__dot__alpha=1.5))) == 1


def test_token_budget_above_the_decode_cap_is_rejected():
  errors = config_check.validate(_config(budget__name="tlts", budget__tlts__start=64))
  assert errors == ["config.budget.tlts.start=64.0: token budgets must be <= "
                    "rollout.max_new_tokens=16 (values <= 1 are fractions of it)"]


def test_ill_typed_option_is_refused_on_assignment_and_in_validation():
  config = _config()
  with pytest.raises(TypeError, match="cannot be casted to type <class 'int'>"):
    config.reward.dler.max_len = "abc"
  config.reward.dler = ml_collections.ConfigDict({"max_len": "abc"})   # bypasses the type
  config.loss.ppo_clip = ml_collections.ConfigDict({"eps_low": "x", "eps_hi": 0.2})
  assert config_check.validate(config) == [
      "config.reward.dler.max_len='abc': must be int or None",
      "config.loss.ppo_clip.eps_hi: unknown option of policy loss 'ppo_clip'; valid options: "
      "eps_low, eps_high, dual_clip_c, log_ratio_clamp",
      "config.loss.ppo_clip.eps_low='x': must be float"]


@pytest.mark.parametrize("overrides, expected", [
    ({"loss__name": "kdrl", "teacher__model": ""},
     "config.loss.name='kdrl' needs config.teacher.model"),
    ({"loss__name": "dph_rl", "teacher__model": ""},
     "config.loss.name='dph_rl' needs config.teacher.model"),
    ({"reward__name": "l1_exact"},
     "config.reward.name='l1_exact' needs config.budget.prompt_template stating the budget"),
    ({"reward__da_dler__caps": (4, 2, 1)},
     "config.reward.da_dler.caps=(4, 2, 1): needs len(config.reward.da_dler.thresholds) + 1 = 2"),
    ({"teacher__model": "gpt-5", "loss__name": "kdrl"}, "config.teacher.model: unknown model"),
    ({"data__dataset": "task:countdown?difficulty=2", "data__eval_dataset": "task:nope"},
     "config.data.eval_dataset: unknown task 'nope'"),
])
def test_cross_section_requirements_fail_before_launch(overrides, expected):
  errors = config_check.validate(_config(**overrides))
  assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_critic_estimator_under_the_grpo_trainer_says_it_needs_a_critic():
  assert config_check.validate(_config(advantage__name="egae")) == [
      "config.advantage.name: advantage 'egae' cannot run under trainer='grpo': it needs a "
      "critic's values, which only trainer=tppo has; valid choices: decs_position, dr_grpo, "
      "grpo, gtpo, reinforce_pp, reinforce_pp_baseline, rloo"]


@pytest.mark.parametrize("reward, steps, num_prompts, noticed", [
    ("hapo_cosine", 2, 32, True),      # 2 steps x 4 prompts = 8 draws of 32: none comes back
    ("ceeh", 8, 32, True),             # 32 draws of 32: exactly one epoch, still none
    ("ceeh", 9, 32, False),            # draws 33-36 are prompts seen before
    ("grpo_lambda", 2, 32, False),     # no per-prompt history
])
def test_history_rewards_that_never_see_a_prompt_twice_are_noticed(reward, steps, num_prompts,
                                                                   noticed):
  config = _config(reward__name=reward, train__steps=steps, data__num_prompts=num_prompts)
  assert config.rollout.prompts_per_step == 4 and config.data.dataset.startswith("task:")
  assert config_check.validate(config) == []
  found = config_check.notices(config)
  assert bool(found) == noticed
  if noticed:
    assert found[0].startswith(f"config.reward.name={reward!r} compares each prompt with its own")
