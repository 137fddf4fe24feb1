"""Rewards: golden values per registered reward, edge cases, and registry-wide contracts."""
import functools

import chex
import jax
import numpy as np
import pytest

from concise_jax import components, testing
from concise_jax.rewards import REWARDS
from configs import common

STATE = ()   # the golden cases below are stateless rewards


def _state(name):
  """The reward's own fresh state for 16 prompts (`()` for a stateless one)."""
  return components.init_state(REWARDS.component(name), 16)


def _reward(name, group_size, **overrides):
  """The jitted reward with defaults + overrides bound; cached so equal shapes compile once."""
  return _jitted(name, group_size, tuple(sorted(overrides.items())))


@functools.cache
def _jitted(name, group_size, overrides):
  kwargs = {**common.REWARD_DEFAULTS[name], **dict(overrides)}
  return jax.jit(functools.partial(REWARDS.get(name), group_size=group_size, **kwargs))


def _rewards(name, batch, group_size, **overrides):
  out, _, _ = _reward(name, group_size, **overrides)(batch, STATE)
  return np.asarray(out.rewards_b)


def test_defaults_table_has_exactly_the_registered_names():
  assert sorted(common.REWARD_DEFAULTS) == REWARDS.names()


def test_unknown_name_lists_known_names():
  with pytest.raises(KeyError, match="correctness, correctness_format"):
    REWARDS.get("no_such_reward")


# ---- golden values ---------------------------------------------------------------------------

def test_correctness_golden():
  batch = testing.make_rollout(correct=[1, 0, 1, 0], length=[3, 5, 0, 8], max_len=8)
  # 0/1 by correctness; length and truncation (last row) do not matter.
  np.testing.assert_allclose(_rewards("correctness", batch, 2), [1, 0, 1, 0])
  np.testing.assert_allclose(
      _rewards("correctness", batch, 2, correct_reward=1.0, wrong_reward=-0.5),
      [1, -0.5, 1, -0.5])


def test_correctness_format_golden():
  batch = testing.make_rollout(correct=[1, 1, 0, 0], length=[4, 4, 4, 4],
                               format_ok=[1, 0, 1, 0])
  # I(correct) + 0.1·I(format_ok): 1+0.1, 1+0, 0+0.1, 0+0.
  np.testing.assert_allclose(_rewards("correctness_format", batch, 4), [1.1, 1.0, 0.1, 0.0],
                             rtol=1e-6)


def test_kimi_length_golden():
  batch = testing.make_rollout(correct=[1, 1, 0, 0], length=[10, 20, 30, 50])
  # Lmin=10, Lmax=50 → lam = 0.5 − (L−10)/40 = [0.5, 0.25, 0, −0.5];
  # term = lam if correct else min(0, lam) = [0.5, 0.25, 0, −0.5];
  # r = C + 0.4·term = [1+0.2, 1+0.1, −0.5+0, −0.5−0.2].
  np.testing.assert_allclose(_rewards("kimi_length", batch, 4), [1.2, 1.1, -0.5, -0.7],
                             rtol=1e-6)


def test_kimi_length_all_correct_all_wrong_groups():
  batch = testing.make_rollout(correct=[1, 1, 1, 0, 0, 0], length=[10, 20, 30, 10, 20, 30])
  # Both groups: lam = 0.5 − (L−10)/20 = [0.5, 0, −0.5].
  # All correct: 1 + 0.4·lam = [1.2, 1.0, 0.8].
  # All wrong: −0.5 + 0.4·min(0, lam) = [−0.5, −0.5, −0.7] (wrong answers are never rewarded).
  np.testing.assert_allclose(_rewards("kimi_length", batch, 3),
                             [1.2, 1.0, 0.8, -0.5, -0.5, -0.7], rtol=1e-6)


def test_kimi_length_zero_length_and_truncated():
  batch = testing.make_rollout(correct=[1, 0, 1, 0], length=[0, 8, 16, 32], max_len=32)
  assert bool(batch.truncated_b[3])
  # Lmin=0, Lmax=32 (the truncated row counts): lam = 0.5 − L/32 = [0.5, 0.25, 0, −0.5];
  # term = [0.5, min(0, .25)=0, 0, −0.5]; r = [1+0.2, −0.5, 1+0, −0.5−0.2].
  np.testing.assert_allclose(_rewards("kimi_length", batch, 4), [1.2, -0.5, 1.0, -0.7],
                             rtol=1e-6)


def test_kimi_length_equal_lengths_and_single_sample():
  # Equal lengths → lam = 0 (no 0/0): base rewards only.
  batch = testing.make_rollout(correct=[1, 0, 1], length=[7, 7, 7])
  np.testing.assert_allclose(_rewards("kimi_length", batch, 3), [1.0, -0.5, 1.0])
  # G = 1: every group has one length → lam = 0.
  np.testing.assert_allclose(_rewards("kimi_length", batch, 1), [1.0, -0.5, 1.0])


def _lambda_batch():
  # group 0: all correct, L = 10, 20, 30   → p = 1
  # group 1: one correct, L = 10, 20, 40   → p = 1/3
  # group 2: all wrong,   L = 5, 5, 5      → p = 0
  return testing.make_rollout(correct=[1, 1, 1, 1, 0, 0, 0, 0, 0],
                              length=[10, 20, 30, 10, 20, 40, 5, 5, 5], group_size=3)


def test_grpo_lambda_golden():
  fn = _reward("grpo_lambda", 3)        # λ = 0.5, min ratio 0, w = 0.4
  out, _, metrics = fn(_lambda_batch(), STATE)
  # k = ceil(0.5·3) = 2 → cut at the 2nd largest p = 1/3 → groups 0 and 1 (p > 0) selected.
  # group 0: lam = 0.5 − (L−10)/20 = [.5, 0, −.5]; all correct → 1 + 0.4·lam = [1.2, 1.0, 0.8]
  # group 1: lam = 0.5 − (L−10)/30 = [.5, 1/6, −.5]; term = [.5, min(0,1/6)=0, −.5]
  #          → [1 + .2, 0 + 0, 0 − .2]
  # group 2: not selected → I(correct) = 0.
  np.testing.assert_allclose(out.rewards_b, [1.2, 1.0, 0.8, 1.2, 0.0, -0.2, 0, 0, 0],
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(out.group_flags_b, [1, 1, 1, 1, 1, 1, 0, 0, 0])
  np.testing.assert_allclose(metrics["grpo_lambda/selected_frac"], 2 / 3, rtol=1e-6)


def test_grpo_lambda_small_fraction_selects_only_best_group():
  # λ = 0.2: k = ceil(0.6) = 1 → only p = 1 (group 0) gets the length reward.
  r_b = _rewards("grpo_lambda", _lambda_batch(), 3, top_fraction=0.2)
  np.testing.assert_allclose(r_b, [1.2, 1.0, 0.8, 1, 0, 0, 0, 0, 0], rtol=1e-6)


def test_grpo_lambda_zero_fraction_is_plain_correctness():
  batch = _lambda_batch()
  np.testing.assert_array_equal(_rewards("grpo_lambda", batch, 3, top_fraction=0.0),
                                _rewards("correctness", batch, 3))


def test_grpo_lambda_ties_are_all_selected():
  # Two groups with p = 1 and λ = 0.25 of 4 groups (k = 1): both tied groups are selected,
  # whatever their order; the p = 0.5 and p = 0 groups are not.
  batch = testing.make_rollout(correct=[1, 1, 1, 1, 1, 0, 0, 0],
                               length=[2, 4, 2, 4, 2, 4, 2, 4], group_size=2)
  out, _, _ = _reward("grpo_lambda", 2, top_fraction=0.25)(batch, STATE)
  np.testing.assert_array_equal(out.group_flags_b, [1, 1, 1, 1, 0, 0, 0, 0])
  # lam = [0.5, −0.5] in the selected groups → 1 ± 0.2.
  np.testing.assert_allclose(out.rewards_b, [1.2, 0.8, 1.2, 0.8, 1, 0, 0, 0], rtol=1e-6)


def test_grpo_lambda_all_wrong_batch_never_penalises_length():
  # Every group p = 0: even the "top" groups stay on 0/1 (min_correct_ratio = 0).
  batch = testing.make_rollout(correct=[0] * 6, length=[1, 9, 3, 7, 2, 8])
  out, _, _ = _reward("grpo_lambda", 2)(batch, STATE)
  np.testing.assert_array_equal(out.rewards_b, np.zeros(6))
  np.testing.assert_array_equal(out.group_flags_b, np.zeros(6))


def test_grpo_lambda_single_sample_groups():
  # G = 1: p ∈ {0, 1}; selected groups have one length → lam = 0 → r = I(correct).
  batch = testing.make_rollout(correct=[1, 0, 1, 0], length=[3, 5, 7, 9])
  np.testing.assert_allclose(_rewards("grpo_lambda", batch, 1), [1, 0, 1, 0])


# ---- contracts, parametrised over the registry -------------------------------------------------

@pytest.mark.parametrize("name", REWARDS.names())
def test_reward_contract(name):
  # The style-guide case, tiled to the shape all contract tests share (P=6, G=4, T=64).
  batch = testing.with_optional_fields(testing.make_rollout(
      correct=[1, 0, 1, 0] * 6, length=[5, 5, 60, 60] * 6, max_len=64, group_size=4))
  out, new_state, metrics = _reward(name, 4)(batch, _state(name))
  chex.assert_shape(out.rewards_b, (24,))
  chex.assert_type(out.rewards_b, np.float32)
  chex.assert_shape(out.loss_mask_bt, (24, 64))
  chex.assert_shape(out.group_flags_b, (24,))
  chex.assert_tree_all_finite(out)
  chex.assert_trees_all_equal_shapes_and_dtypes(new_state, _state(name))
  assert all(np.shape(v) == () for v in metrics.values())
  r_b = np.asarray(out.rewards_b)
  assert r_b[0] >= r_b[1] and r_b[2] >= r_b[3]   # correct never below incorrect at equal length


@pytest.mark.parametrize("name", REWARDS.names())
def test_reward_correct_never_below_wrong_at_equal_length(name):
  # Random groups with few distinct lengths (so ties occur), including 0 and the cap.
  rng = np.random.default_rng(0)
  group_size, num_groups = 4, 6
  correct = rng.integers(0, 2, group_size * num_groups)
  length = rng.choice([0, 5, 20, 64], group_size * num_groups)
  batch = testing.with_optional_fields(
      testing.make_rollout(correct, length, max_len=64, group_size=group_size))
  out, _, _ = _reward(name, group_size)(batch, _state(name))
  r_pg = np.asarray(out.rewards_b).reshape(num_groups, group_size)
  c_pg, l_pg = correct.reshape(r_pg.shape), length.reshape(r_pg.shape)
  pairs = 0
  for p in range(num_groups):
    for i in range(group_size):
      for j in range(group_size):
        if c_pg[p, i] and not c_pg[p, j] and l_pg[p, i] == l_pg[p, j]:
          assert r_pg[p, i] >= r_pg[p, j], (p, i, j)
          pairs += 1
  assert pairs >= 3                              # the draw really contains such pairs


@pytest.mark.parametrize("name", REWARDS.names())
def test_reward_invariant_to_permuting_whole_groups(name):
  rng = np.random.default_rng(1)
  group_size = 4
  batch = testing.with_optional_fields(testing.make_rollout(
      rng.integers(0, 2, 24), rng.integers(0, 65, 24), max_len=64,
      format_ok=rng.integers(0, 2, 24), group_size=group_size))
  perm = [3, 0, 5, 4, 2, 1]
  fn = _reward(name, group_size)
  out, state, metrics = fn(batch, _state(name))
  out_p, state_p, metrics_p = fn(testing.permute_groups(batch, perm, group_size), _state(name))
  chex.assert_trees_all_close(out_p, testing.permute_groups(out, perm, group_size))
  chex.assert_trees_all_close(state_p, state)    # tables are indexed by prompt id, not slot
  chex.assert_trees_all_close(metrics_p, metrics)
