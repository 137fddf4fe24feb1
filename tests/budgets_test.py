"""Budget schedules: hand-computed budgets per step, per-prompt updates, L1 rewards, the sampler
honouring per-prompt caps, and a bit-exact resume with a per-prompt schedule."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import budgets, components, rewards, testing
from concise_jax.train import loop, rollout_step
from concise_jax.train import trainer as trainer_lib
from configs import palu
from tests import resume_test

CAP = 128
IDX = jnp.arange(3, dtype=jnp.int32)
EMPTY = jnp.full((5,), -1, jnp.int32)


def _budget(name, step, budget_n=EMPTY, **kwargs):
  fn = budgets.BUDGET_SCHEDULES.get(name)
  table = kwargs
  return np.asarray(jax.jit(functools.partial(fn, max_new_tokens=CAP, **table))(
      step, budget_n, IDX))


@pytest.mark.parametrize("step,expected", [
    (0, 128), (9, 128), (10, 96), (20, 72), (30, 54),  # 128 · 0.75^k
    (40, 40),                                          # 40.5 rounds half to even
    (50, 32), (500, 32)])                              # 30.4 < floor 0.25 · 128 = 32
def test_tlts_decays_by_gamma_every_period_down_to_the_floor(step, expected):
  assert list(_budget("tlts", step)) == [expected] * 3


def test_tlts_linear_form_interpolates_to_the_floor():
  # 128 + (32 − 128) · 50 / 100 = 80; past linear_steps it stays at 32.
  assert _budget("tlts", 50, linear_steps=100)[0] == 80
  assert _budget("tlts", 150, linear_steps=100)[0] == 32


@pytest.mark.parametrize("step,expected", [(0, 128), (49, 128), (50, 96), (99, 96),
                                           (100, 64), (1000, 64)])
def test_thinkprune_rounds_step_down_and_the_last_round_repeats(step, expected):
  assert _budget("thinkprune", step)[0] == expected   # limits 1, 0.75, 0.5 of 128


@pytest.mark.parametrize("step,expected", [(0, 64), (10, 96), (20, 128), (30, 96), (40, 64)])
def test_siri_cosine_cycle_starts_compressed(step, expected):
  # low 64, high 128, period 40: 64 + 64 · (1 − cos(2π t / 40)) / 2.
  assert _budget("siri", step)[0] == expected


def test_siri_can_start_expanded():
  assert _budget("siri", 0, start_low=False)[0] == 128
  assert _budget("siri", 20, start_low=False)[0] == 64


def test_uniform_is_a_pure_function_of_step_and_prompt_within_bounds():
  fn = jax.jit(functools.partial(budgets.BUDGET_SCHEDULES.get("uniform"), max_new_tokens=CAP,
                                 low=32, high=None, seed=0))
  idx = jnp.arange(200, dtype=jnp.int32)
  a, b, c = fn(3, EMPTY, idx), fn(3, EMPTY, idx), fn(4, EMPTY, idx)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert int(a.min()) >= 32 and int(a.max()) <= 128 and len(set(np.asarray(a))) > 50


def _rollout(correct_b, length_b, prompt_index_b):
  return testing.make_rollout(correct_b, length_b,
                              prompt_index=prompt_index_b, max_len=CAP)


def _update(name):
  """The per-prompt schedule's own update (its `init` carries it), with its default options."""
  component = budgets.BUDGET_SCHEDULES.component(name)
  defaults = {k: o.default for k, o in component.options.items()}
  return functools.partial(component.init.update, group_size=4, max_new_tokens=CAP, **defaults)


def test_per_prompt_schedules_own_a_table_of_unseen_prompts():
  for name in ("palu", "da_dler_caps"):
    table = components.init_state(budgets.BUDGET_SCHEDULES.component(name), 5)
    np.testing.assert_array_equal(table, [-1] * 5)
    assert table.dtype == jnp.int32
  assert components.init_state(budgets.BUDGET_SCHEDULES.component("tlts"), 5) == ()


def test_palu_shrinks_to_the_median_correct_length_or_relaxes_to_the_cap():
  # Group prompt 3: 3/4 correct (≥ C = 0.5), correct lengths 10, 20, 30 → median 20.
  # Group prompt 1: 1/4 correct → violated → the cap 128.
  # Group prompt 4: 4/4 correct, lengths 2, 3, 4, 5 → median 3.5 → ceil 4 → min_budget 8.
  batch = _rollout([1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1],
                   [10, 20, 30, 40, 5, 50, 60, 70, 2, 3, 4, 5],
                   [3] * 4 + [1] * 4 + [4] * 4)
  budget_n = np.asarray(jax.jit(_update("palu"))(EMPTY, batch))
  assert list(budget_n) == [-1, 128, -1, 20, 8]
  # The schedule reads the table: unseen prompts (0, 2) get the cap.
  assert list(_budget("palu", 7, budget_n=jnp.asarray(budget_n))) == [128, 128, 128]
  fn = functools.partial(budgets.BUDGET_SCHEDULES.get("palu"), max_new_tokens=CAP)
  assert list(np.asarray(fn(0, jnp.asarray(budget_n), jnp.asarray([3, 4, 0])))) == [20, 8, 128]


def test_da_dler_caps_send_easy_prompts_to_the_small_cap_next_time():
  batch = _rollout([1, 1, 0, 0, 1, 0, 0, 0], [9] * 8, [0] * 4 + [2] * 4)  # p = 0.5, 0.25
  assert list(np.asarray(_update("da_dler_caps")(EMPTY, batch))) == [64, -1, 128, -1, -1]


def _l1(name, budget_b, length_b, correct_b, **kwargs):
  batch = testing.make_rollout(correct_b, length_b, max_len=CAP,
                               budget_b=np.asarray(budget_b, np.int32))
  table = kwargs
  out, _, metrics = rewards.REWARDS.get(name)(batch, (), group_size=1,
                                              **table)
  return np.asarray(out.rewards_b), metrics


def test_l1_exact_penalises_distance_to_the_stated_budget():
  # alpha 0.01: correct |50 − 30| → 1 − 0.2; wrong |50 − 70| → −0.2; zero-length |50 − 0|
  # → 1 − 0.5; no budget (−1) → plain 0/1.
  r, metrics = _l1("l1_exact", [50, 50, 50, -1], [30, 70, 0, 90], [1, 0, 1, 1], alpha=0.01)
  np.testing.assert_allclose(r, [0.8, -0.2, 0.5, 1.0], atol=1e-6)
  np.testing.assert_allclose(float(metrics["l1_exact/abs_dev"]), (20 + 20 + 50) / 3, rtol=1e-6)


def test_l1_max_paper_and_code_forms():
  budget, length, correct = [50, 50, 50, 50], [30, 120, 30, 0], [1, 1, 0, 1]
  # paper: clip(0.01 (50 − L) + 0.5, 0, 1) on correct answers → 0.7, 0 (−0.2 clipped), 0, 1.
  r, metrics = _l1("l1_max", budget, length, correct)
  np.testing.assert_allclose(r, [0.7, 0.0, 0.0, 1.0], atol=1e-6)
  assert float(metrics["l1_max/over_budget"]) == 0.25
  # code forms, alpha 0.01: d = (clip(0.01 (50 − L), −1, 1) + 1) / 2 = 0.6, 0.15, 0.6, 0.75.
  r, _ = _l1("l1_max", budget, length, correct, form="additive")
  np.testing.assert_allclose(r, [1.6, 1.15, 0.6, 1.75], atol=1e-6)
  r, _ = _l1("l1_max", budget, length, correct, form="multiplier")
  np.testing.assert_allclose(r, [0.6, 0.15, 0.0, 0.75], atol=1e-6)


def test_l1_without_a_stated_budget_says_how_to_get_one():
  batch = testing.make_rollout([1], [3], max_len=8)
  with pytest.raises(ValueError, match="prompt_template"):
    rewards.REWARDS.get("l1_exact")(batch, (), group_size=1)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_per_prompt_caps_bound_lengths_and_count_as_truncation_and_templates_only_state():
  config = palu.get_config("model=tiny,runlocal")
  model_cfg, params, tokenizer = trainer_lib.load_model(config)
  examples = trainer_lib.load_prompts(config)[0][:2]
  sp = rollout_step.sampling_params(config, tokenizer)
  run = functools.partial(rollout_step.rollout_batch, model_cfg, params, tokenizer, examples,
                          [0, 1], jax.random.PRNGKey(0), sp=sp, group_size=4,
                          fmt=rollout_step.prompt_format(config),
                          check=rollout_step.check_in_process)
  free, _, _ = run()
  capped, _, _ = run(budget_p=np.asarray([3, 5]))
  cap_b = np.repeat([3, 5], 4)
  assert (capped.length_b <= cap_b).all() and capped.budget_b is None
  assert (np.asarray(capped.truncated_b) == (capped.length_b == cap_b)).all()
  assert (free.length_b > cap_b).any()               # the caps did bind
  stated, texts, _ = run(budget_p=np.asarray([3, 5]), budget_template="Think for {n} tokens.")
  np.testing.assert_array_equal(stated.budget_b, cap_b)
  assert stated.length_b.max() > 5                   # stated, not enforced
  prompt = tokenizer.decode(stated.prompt_tokens_bs[4][stated.prompt_mask_bs[4] > 0])
  assert "think for 5 tokens." in prompt.lower()        # the tiny tokenizer lowercases


@pytest.mark.slow
def test_resume_with_a_per_prompt_budget_schedule_is_bit_exact(tmp_path):
  config = resume_test.tiny_config(steps=4, ckpt_every=2)
  config.budget.name = "palu"
  config.eval.every = 0
  straight = loop.run(config, str(tmp_path / "a"))
  loop.run(config, str(tmp_path / "b"), stop_at_step=2)
  resumed = loop.run(config, str(tmp_path / "b"))
  assert int(np.sum(np.asarray(straight.state.reward_state.budget) > 0)) > 0
  resume_test._assert_trees_equal(resume_test._host(straight.state),
                                  resume_test._host(resumed.state))
