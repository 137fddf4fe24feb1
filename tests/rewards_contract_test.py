"""The contract every registered reward keeps, checked for all names in `REWARDS`.

Inputs are generic: every optional `Rollout` field is filled (`testing.with_optional_fields`),
so a reward added later that reads any of them is covered without edits here. Each case runs
on a fresh reward state (every prompt seen for the first time) and on a warm one (histories,
accuracy EMAs, band targets, pass-rate window already filled).
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import components, testing
from concise_jax.rewards import REWARDS
from configs import common

NUM_PROMPTS, MAX_LEN = 16, 64
PROMPT_IDS_P = [3, 7, 1, 12, 5, 9]               # dataset ids of the 6 groups (not 0..5)


def _fresh_state(name):
  return components.init_state(REWARDS.component(name), NUM_PROMPTS, pass_rate_window=8)


def _warm_tables():
  """Warm values by state key: histories, accuracy EMAs, curriculum, pass-rate window."""
  rng = np.random.default_rng(7)
  count_n = rng.integers(0, 3, NUM_PROMPTS).astype(np.float32)   # some prompts still unseen
  len_n = np.where(count_n > 0, rng.uniform(1, MAX_LEN, NUM_PROMPTS), 0)
  return {"len_n": len_n, "len_ref_n": len_n, "count_n": count_n,
          "acc_ema_n": np.where(count_n > 0, rng.uniform(0, 1, NUM_PROMPTS), -1),
          "kappa": 0.5, "prev_ratio": 0.3, "rate_w": rng.uniform(0, 1, 8), "count": 3}


def _warm_state(name):
  """The reward's own state after some steps: its keys filled from `_warm_tables`; LASER-D/DE
  band targets set."""
  state = _fresh_state(name)
  if isinstance(state, dict):
    warm = _warm_tables()
    return {k: jnp.asarray(warm[k], v.dtype) for k, v in state.items()}
  if name in ("laser_d", "laser_de"):
    return jnp.asarray([48.0, 32.0, 16.0])
  return state


STATES = {"fresh": _fresh_state, "warm": _warm_state}


@functools.cache
def _jitted(name, group_size):
  return jax.jit(functools.partial(REWARDS.get(name), group_size=group_size))


def _batch(group_size, seed=0):
  """6 groups with random correctness, lengths in [0, 64] (0 and the cap included)."""
  rng = np.random.default_rng(seed)
  num = group_size * len(PROMPT_IDS_P)
  length = rng.integers(0, MAX_LEN + 1, num)
  length[:2] = [0, MAX_LEN]                       # an empty and a truncated response
  batch = testing.make_rollout(
      rng.integers(0, 2, num), length, max_len=MAX_LEN, format_ok=rng.integers(0, 2, num),
      prompt_index=np.repeat(PROMPT_IDS_P, group_size),
      old_logp=-rng.uniform(0, 3, (num, MAX_LEN)).astype(np.float32))
  return testing.with_optional_fields(batch, seed=seed)


@pytest.mark.parametrize("state_kind", sorted(STATES))
@pytest.mark.parametrize("group_size", [1, 4])
@pytest.mark.parametrize("name", REWARDS.names())
def test_shapes_dtypes_and_finite(name, group_size, state_kind):
  batch, state = _batch(group_size), STATES[state_kind](name)
  num = batch.batch_size
  out, new_state, metrics = _jitted(name, group_size)(batch, state)
  chex.assert_shape(out.rewards_b, (num,))
  chex.assert_type(out.rewards_b, np.float32)
  chex.assert_shape(out.loss_mask_bt, (num, MAX_LEN))
  chex.assert_shape(out.group_flags_b, (num,))
  if out.token_rewards_bt is not None:
    chex.assert_shape(out.token_rewards_bt, (num, MAX_LEN))
  chex.assert_tree_all_finite(out)
  chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
  chex.assert_tree_all_finite(new_state)
  for key, value in metrics.items():
    assert "/" in key, key                      # "<reward or family>/<metric>"
    assert np.shape(value) == () and np.isfinite(value), (key, value)


@pytest.mark.parametrize("state_kind", sorted(STATES))
@pytest.mark.parametrize("name", REWARDS.names())
def test_invariant_to_permuting_whole_groups_with_their_prompt_ids(name, state_kind):
  group_size, perm = 4, [3, 0, 5, 4, 2, 1]
  batch, state = _batch(group_size, seed=1), STATES[state_kind](name)
  fn = _jitted(name, group_size)
  out, new_state, metrics = fn(batch, state)
  out_p, new_state_p, metrics_p = fn(testing.permute_groups(batch, perm, group_size), state)
  chex.assert_trees_all_close(out_p, testing.permute_groups(out, perm, group_size),
                              rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new_state_p, new_state, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(metrics_p, metrics, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", REWARDS.names())
def test_correct_never_below_wrong_at_equal_length(name):
  # Pairs of equal length inside one group, one correct and one wrong, across lengths 0..cap.
  group_size = 4
  length = np.asarray([0, 0, 9, 9, 30, 30, 64, 64, 1, 1, 50, 50])
  correct = np.tile([1, 0], 6)
  batch = testing.with_optional_fields(testing.make_rollout(
      correct, length, max_len=MAX_LEN, prompt_index=np.repeat([3, 7, 1], group_size)))
  for state in (_fresh_state(name), _warm_state(name)):
    r_b = np.asarray(_jitted(name, group_size)(batch, state)[0].rewards_b)
    assert np.all(r_b[0::2] >= r_b[1::2]), (name, r_b)


def test_every_registered_reward_has_a_defaults_entry():
  assert sorted(common.REWARD_DEFAULTS) == REWARDS.names()
