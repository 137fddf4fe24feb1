"""RLOO and REINFORCE++ (plain and group-baseline / DLER) advantages: hand-computed goldens."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import testing, types
from concise_jax.advantages import ADVANTAGES


def _advantage(name, rewards, group_size, length, max_len, **overrides):
  rewards = np.asarray(rewards, np.float32)
  batch = testing.make_rollout(correct=rewards > 0, length=length, max_len=max_len)
  reward_out = types.make_reward_output(batch, jnp.asarray(rewards))
  fn = jax.jit(functools.partial(ADVANTAGES.get(name), group_size=group_size,
                                 **overrides))
  adv_bt, metrics = fn(reward_out, batch, batch.mask_bt)
  return np.asarray(adv_bt), metrics


def test_rloo_golden_leave_one_out():
  adv_bt, _ = _advantage("rloo", [1, 0, 0, 1, 2, 0.5, 0.5, 1], 4, [2] * 8, 2)
  # group 0: 1 − mean(0, 0, 1) = 2/3; 0 − mean(0, 1, 1) = −2/3 (= 4/3 · (r − 0.5))
  # group 1: 2 − mean(.5, .5, 1) = 4/3; .5 − mean(2, .5, 1) = −2/3; 1 − mean(2, .5, .5) = 0
  want_b = [2 / 3, -2 / 3, -2 / 3, 2 / 3, 4 / 3, -2 / 3, -2 / 3, 0.0]
  np.testing.assert_allclose(adv_bt[:, 0], want_b, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(adv_bt[:, 1], adv_bt[:, 0])


def test_rloo_pair_and_single_sample():
  adv_bt, _ = _advantage("rloo", [1, 0], 2, [1, 1], 1)
  np.testing.assert_allclose(adv_bt[:, 0], [1.0, -1.0])         # 1 − 0, 0 − 1
  adv_bt, _ = _advantage("rloo", [1, 0, 0.3], 1, [1, 1, 1], 1)   # G = 1: no baseline → 0
  np.testing.assert_array_equal(adv_bt, np.zeros((3, 1)))


def test_reinforce_pp_baseline_golden_token_weighted_batch_whitening():
  # DLER / verl reinforce_plus_plus_baseline. Lengths differ so token weighting matters.
  adv_bt, _ = _advantage("reinforce_pp_baseline", [1, 0, 0, 0, 1, 1, 0, 0], 4,
                         [2, 2, 1, 1, 1, 1, 1, 1], 2)
  # a = r − group mean: [.75, −.25, −.25, −.25 | .5, .5, −.5, −.5]
  # tokens: .75×2, −.25×2, −.25, −.25, .5, .5, −.5, −.5 → n = 10, Σ = 0.5, mean = 0.05
  # deviations .7 (×2), −.3 (×4), .45 (×2), −.55 (×2); Σ dev² = .98 + .36 + .405 + .605 = 2.35
  # unbiased var = 2.35 / 9 = 0.261111, std = 0.510990
  std = np.sqrt(2.35 / 9 + 1e-8)
  want_bt = np.array([[.7, .7], [-.3, -.3], [-.3, 0], [-.3, 0],
                      [.45, 0], [.45, 0], [-.55, 0], [-.55, 0]]) / std
  np.testing.assert_allclose(adv_bt, want_bt, rtol=1e-5)
  np.testing.assert_allclose(adv_bt[0, 0], 1.369890, rtol=1e-5)     # 0.7 / 0.510990


def test_reinforce_pp_baseline_batch_not_group_scale():
  # Two groups with different spreads keep their ratio (GRPO would give both ±0.866).
  adv_bt, _ = _advantage("reinforce_pp_baseline", [1, 0, 0.2, 0], 2, [1] * 4, 1)
  # a = [.5, −.5, .1, −.1]: mean 0, var = (.25 + .25 + .01 + .01) / 3 = 0.173333
  np.testing.assert_allclose(adv_bt[:, 0], np.array([.5, -.5, .1, -.1]) / np.sqrt(0.52 / 3),
                             rtol=1e-5)


def test_reinforce_pp_discounted_returns_golden():
  adv_bt, _ = _advantage("reinforce_pp", [1, 0], 2, [3, 2], 3, gamma=0.5)
  # outcome reward on the last valid token: row 0 rewards [0, 0, 1] → returns [.25, .5, 1];
  # row 1 reward 0 → returns [0, 0]. n = 5, mean = 1.75 / 5 = 0.35;
  # deviations [−.1, .15, .65 | −.35, −.35], Σ dev² = 0.7, unbiased var 0.175, std 0.418330
  std = np.sqrt(0.175 + 1e-8)
  want_bt = np.array([[-.1, .15, .65], [-.35, -.35, 0]]) / std
  np.testing.assert_allclose(adv_bt, want_bt, rtol=1e-5, atol=1e-7)


def test_reinforce_pp_uses_token_rewards_when_given():
  batch = testing.make_rollout(correct=[1, 0], length=[2, 2], max_len=2)
  reward_out = types.make_reward_output(batch, jnp.zeros(2), token_rewards_bt=jnp.array(
      [[1.0, 0.0], [0.0, 0.0]]))
  adv_bt, _ = ADVANTAGES.get("reinforce_pp")(reward_out, batch, batch.mask_bt, group_size=2)
  # γ = 1 returns [[1, 0], [0, 0]]: mean .25, var = (.5625 + 3·.0625) / 3 = 0.25 → std 0.5
  np.testing.assert_allclose(adv_bt, [[1.5, -0.5], [-0.5, -0.5]], rtol=1e-5)


def test_reinforce_pp_flat_batch_is_exactly_zero_and_single_samples_still_learn():
  adv_bt, _ = _advantage("reinforce_pp", [0.7] * 4, 2, [2, 2, 1, 0], 2)
  np.testing.assert_array_equal(adv_bt, np.zeros((4, 2)))     # no signal anywhere
  adv_bt, _ = _advantage("reinforce_pp", [1, 0], 1, [1, 1], 1)
  # G = 1: the batch mean is the baseline: [1, 0] → mean .5, var .5 → ±.5/.707107
  np.testing.assert_allclose(adv_bt[:, 0], [0.707107, -0.707107], rtol=1e-5)


def test_truncated_and_zero_length_rows_follow_the_mask():
  batch = testing.make_rollout(correct=[1, 0, 1, 0], length=[3, 0, 3, 1], max_len=3)
  reward_out = types.make_reward_output(batch, jnp.array([1.0, 0.0, 1.0, 0.0]))
  mask_bt = batch.mask_bt * jnp.array([1.0, 1.0, 0.0, 1.0])[:, None]   # row 2 filtered out
  for name in ("rloo", "reinforce_pp", "reinforce_pp_baseline"):
    adv_bt, _ = ADVANTAGES.get(name)(reward_out, batch, mask_bt, group_size=2)
    assert np.all(np.asarray(adv_bt)[1:3] == 0), name
    assert np.all(np.isfinite(adv_bt))
