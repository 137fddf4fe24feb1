"""Advantage estimators: golden values, degenerate groups, and registry-wide contracts."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing, types
from concise_jax.advantages import ADVANTAGES
from configs import common


def _advantage(name, rewards, group_size, length=None, **overrides):
  """adv_bt, metrics for hand-given rewards; rows are fully valid unless `length` says not."""
  rewards = np.asarray(rewards, np.float32)
  length = [3] * len(rewards) if length is None else length
  batch = testing.make_rollout(correct=rewards > 0, length=length, max_len=3,
                               features={"entropy": np.full((len(rewards), 3), 0.1, np.float32)})
  reward_out = types.make_reward_output(batch, jnp.asarray(rewards))
  fn = _jitted(name, group_size, tuple(sorted(overrides.items())))
  adv_bt, metrics = fn(reward_out, batch, batch.mask_bt)
  return np.asarray(adv_bt), metrics


@functools.cache
def _jitted(name, group_size, overrides):
  """Cached so tests with equal shapes share one compilation."""
  return jax.jit(functools.partial(ADVANTAGES.get(name), group_size=group_size,
                                   **dict(overrides)))


def test_defaults_table_has_exactly_the_registered_names():
  assert sorted(common.ADVANTAGE_DEFAULTS) == ADVANTAGES.names()


def test_unknown_name_lists_known_names():
  with pytest.raises(KeyError, match="dr_grpo, grpo"):
    ADVANTAGES.get("gae_typo")


def test_grpo_golden_unbiased_std():
  adv_bt, metrics = _advantage("grpo", [1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5], 4)
  # group 0: mean 0.5, unbiased std = sqrt(4·0.25/3) = 0.577350 → ±0.5/0.577350 = ±0.866025
  # group 1: all equal → exactly 0.
  want_b = [0.866025, -0.866025, 0.866025, -0.866025, 0, 0, 0, 0]
  np.testing.assert_allclose(adv_bt[:, 0], want_b, rtol=1e-5)
  np.testing.assert_array_equal(adv_bt, np.repeat(adv_bt[:, :1], 3, axis=1))  # per-token copy
  np.testing.assert_allclose(metrics["adv/zero_var_frac"], 0.5)


def test_grpo_golden_population_std():
  adv_bt, _ = _advantage("grpo", [1, 0, 1, 0], 4, std_ddof=0)
  # population std = 0.5 → ±0.5/0.5 = ±1 (up to eps = 1e-6).
  np.testing.assert_allclose(adv_bt[:, 0], [1, -1, 1, -1], rtol=1e-5)


def test_grpo_single_outlier():
  adv_bt, _ = _advantage("grpo", [1, 0, 0, 0, 0, 0, 0, 0], 8)
  # mean 1/8; squared deviations 0.875² + 7·0.125² = 0.875; unbiased var 0.875/7 = 0.125,
  # std 0.353553 → outlier 0.875/0.353553 = 2.474874, others −0.125/0.353553 = −0.353553.
  np.testing.assert_allclose(adv_bt[:, 0], [2.474874] + [-0.353553] * 7, rtol=1e-5)


def test_dr_grpo_golden():
  adv_bt, _ = _advantage("dr_grpo", [1, 0, 0, 0.5, 2, 2, 2, 2], 4)
  # group 0: mean 0.375 → [0.625, −0.375, −0.375, 0.125], no std division; group 1: flat → 0.
  np.testing.assert_allclose(adv_bt[:, 0], [0.625, -0.375, -0.375, 0.125, 0, 0, 0, 0],
                             rtol=1e-6)


# Estimators whose advantage is not centred within each group (own tests cover their edges):
# REINFORCE++ takes the batch mean as baseline; GTPO subtracts an entropy penalty from A_i.
NOT_GROUP_CENTRED = ("reinforce_pp", "gtpo")
GROUP_CENTRED = [n for n in ADVANTAGES.names() if n not in NOT_GROUP_CENTRED]


@pytest.mark.parametrize("name", GROUP_CENTRED)
def test_all_equal_groups_give_zero_not_nan(name):
  # all correct, all wrong, and a non-dyadic constant whose float32 mean has rounding error.
  adv_bt, _ = _advantage(name, [1, 1, 1, 0, 0, 0, 0.7, 0.7, 0.7], 3)
  np.testing.assert_array_equal(adv_bt, np.zeros_like(adv_bt))


@pytest.mark.parametrize("name", GROUP_CENTRED)
def test_single_sample_groups_give_zero(name):
  adv_bt, _ = _advantage(name, [1, 0, 0.3], 1)      # G = 1: no baseline, no signal
  np.testing.assert_array_equal(adv_bt, np.zeros_like(adv_bt))


@pytest.mark.parametrize("name", ADVANTAGES.names())
def test_zero_length_and_partial_rows_are_masked(name):
  adv_bt, _ = _advantage(name, [1, 0, 1, 0], 4, length=[3, 0, 1, 2])
  assert np.all(adv_bt[1] == 0)                     # zero-length row: nothing to train
  assert np.all(adv_bt[2, 1:] == 0) and adv_bt[3, 2] == 0
  if name != "gtpo":  # GTPO zeroes row 3: its tokens are a prefix shared with positive row 0
    assert adv_bt[2, 0] > 0 and adv_bt[3, 1] < 0


# ---- contracts -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ADVANTAGES.names())
def test_advantage_contract(name):
  rng = np.random.default_rng(0)
  rewards = rng.normal(size=12).astype(np.float32)
  adv_bt, metrics = _advantage(name, rewards, 4, length=rng.integers(0, 4, 12))
  chex.assert_shape(adv_bt, (12, 3))
  chex.assert_tree_all_finite(adv_bt)
  assert all(np.shape(v) == () for v in metrics.values())
  # Outcome estimators centre each group: advantages of a group sum to 0 over its samples.
  if name not in NOT_GROUP_CENTRED:
      np.testing.assert_allclose(_advantage(name, rewards, 4)[0][:, 0].reshape(3, 4).sum(1), 0,
                               atol=1e-5)


@pytest.mark.parametrize("name", ADVANTAGES.names())
def test_advantage_invariant_to_permuting_whole_groups(name):
  rng = np.random.default_rng(2)
  rewards = rng.normal(size=12).astype(np.float32)
  perm = [2, 0, 1]
  rewards_perm = testing.permute_groups(jnp.asarray(rewards), perm, 4)
  adv_bt, _ = _advantage(name, rewards, 4)
  adv_perm_bt, _ = _advantage(name, rewards_perm, 4)
  np.testing.assert_allclose(adv_perm_bt, testing.permute_groups(adv_bt, perm, 4), rtol=1e-6)
