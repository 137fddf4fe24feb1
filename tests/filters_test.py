"""Group filters: DAPO dynamic sampling on raw correctness, and the host-side refill loop."""
import functools
import itertools

import chex
import jax
import numpy as np
import pytest

from concise_jax import filters, testing
from concise_jax.filters import GROUP_FILTERS
from concise_jax.rewards import REWARDS
from configs import common

STATE = ()   # stateless rewards


@functools.cache
def _filter(name, group_size):
  return jax.jit(functools.partial(GROUP_FILTERS.get(name), group_size=group_size))


def _scored(correct, length, group_size, first_prompt=0):
  """(rollout, kimi-shaped reward output): shaped rewards vary even where correctness does not."""
  batch = testing.make_rollout(correct, length,
                               prompt_index=first_prompt + np.arange(len(correct)) // group_size)
  return batch, _kimi(group_size)(batch, STATE)[0]


@functools.cache
def _kimi(group_size):
  return jax.jit(functools.partial(REWARDS.get("kimi_length"), group_size=group_size))


def test_defaults_table_has_exactly_the_registered_names():
  assert sorted(common.FILTER_DEFAULTS) == GROUP_FILTERS.names()


def test_unknown_name_lists_known_names():
  with pytest.raises(KeyError, match="none, nonzero_variance"):
    GROUP_FILTERS.get("dapo")


def test_nonzero_variance_golden_on_raw_correctness():
  # groups: all correct | all wrong (lengths differ, so Kimi rewards differ) | 1 of 3 | 2 of 3
  batch, reward_out = _scored([1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1],
                              [5, 9, 7, 2, 30, 11, 5, 5, 5, 4, 6, 8], 3)
  assert np.ptp(np.asarray(reward_out.rewards_b)[3:6]) > 0   # shaped reward varies ...
  keep_b = _filter("nonzero_variance", 3)(batch, reward_out)
  # ... but raw correctness does not: keep iff 0 < #correct < 3.
  np.testing.assert_array_equal(keep_b, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])


def test_nonzero_variance_single_sample_keeps_nothing():
  batch, reward_out = _scored([1, 0, 1], [3, 4, 5], 1)
  np.testing.assert_array_equal(_filter("nonzero_variance", 1)(batch, reward_out), [0, 0, 0])


def test_none_keeps_everything():
  batch, reward_out = _scored([1, 1, 0, 0], [3, 0, 5, 8], 2)
  np.testing.assert_array_equal(_filter("none", 2)(batch, reward_out), [1, 1, 1, 1])


@pytest.mark.parametrize("name", GROUP_FILTERS.names())
def test_filter_contract(name):
  rng = np.random.default_rng(0)
  correct, length = rng.integers(0, 2, 20), rng.integers(0, 30, 20)
  batch, reward_out = _scored(correct, length, 4)
  keep_b = np.asarray(_filter(name, 4)(batch, reward_out))
  chex.assert_shape(keep_b, (20,))
  assert keep_b.dtype == bool
  keep_pg = keep_b.reshape(5, 4)
  assert np.all(keep_pg == keep_pg[:, :1])                  # whole groups only
  perm = [2, 4, 0, 1, 3]
  keep_perm_b = _filter(name, 4)(*testing.permute_groups((batch, reward_out), perm, 4))
  np.testing.assert_array_equal(keep_perm_b, testing.permute_groups(keep_b, perm, 4))


# ---- host-side refill ------------------------------------------------------------------------

def _batches(correct_per_batch, group_size):
  """An endless source of scored batches with consecutive prompt ids."""
  counter = itertools.count()
  def next_batch():
    k = next(counter)
    correct = correct_per_batch[k % len(correct_per_batch)]
    return _scored(correct, [4] * len(correct), group_size, first_prompt=100 * k)
  return next_batch


def _keep_fn(group_size):
  fn = _filter("nonzero_variance", group_size)
  return lambda item: fn(*item)


def test_fill_groups_refills_from_more_prompts():
  # G = 2, P = 3 per rollout batch; per batch groups kept: [no, yes, no] then [yes, yes, no].
  next_batch = _batches([[1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 1, 1]], 2)
  (batch, reward_out), keep_b, stats = filters.fill_groups(
      next_batch, _keep_fn(2), group_size=2, groups_per_update=3)
  # batch 0 gives group 1 (prompt 1); batch 1 gives groups 0, 1 (prompts 100, 101) → 3 groups.
  np.testing.assert_array_equal(batch.prompt_index_b, [1, 1, 100, 100, 101, 101])
  np.testing.assert_array_equal(batch.correct_b, [1, 0, 0, 1, 1, 0])
  chex.assert_shape(reward_out.rewards_b, (6,))
  np.testing.assert_array_equal(keep_b, np.ones(6, bool))
  assert stats == {"num_batches": 2, "groups_seen": 6, "groups_kept": 3, "filled": True}


def test_fill_groups_drops_surplus_groups():
  next_batch = _batches([[1, 0, 0, 1, 1, 0]], 2)             # every group kept
  (batch, _), keep_b, stats = filters.fill_groups(next_batch, _keep_fn(2), group_size=2,
                                                  groups_per_update=2)
  np.testing.assert_array_equal(batch.prompt_index_b, [0, 0, 1, 1])
  assert stats["num_batches"] == 1 and keep_b.all()


def test_fill_groups_pads_with_rejected_groups_when_exhausted():
  # Only one varying group per batch, 2 batches allowed, 3 groups wanted.
  next_batch = _batches([[1, 1, 0, 1, 0, 0]], 2)
  (batch, _), keep_b, stats = filters.fill_groups(next_batch, _keep_fn(2), group_size=2,
                                                  groups_per_update=3, max_batches=2)
  # kept: prompt 1 (batch 0), prompt 101 (batch 1); padding: first rejected group, prompt 0.
  np.testing.assert_array_equal(batch.prompt_index_b, [1, 1, 101, 101, 0, 0])
  np.testing.assert_array_equal(keep_b, [1, 1, 1, 1, 0, 0])
  assert not stats["filled"] and stats["groups_kept"] == 2


def test_fill_groups_raises_without_enough_groups():
  with pytest.raises(ValueError, match="needs 5"):
    filters.fill_groups(_batches([[1, 0, 1, 1]], 2), _keep_fn(2), group_size=2,
                        groups_per_update=5, max_batches=2)


def test_select_groups_and_split_group_mask():
  batch, _ = _scored([1, 0, 1, 1, 0, 1], [1, 2, 3, 4, 5, 6], 2)
  kept = filters.select_groups(batch, [0, 0, 1, 1, 1, 1], group_size=2)
  np.testing.assert_array_equal(kept.length_b, [3, 4, 5, 6])
  with pytest.raises(ValueError, match="not constant within groups"):
    filters.select_groups(batch, [1, 0, 1, 1, 1, 1], group_size=2)
