"""Balanced online difficulty filtering and the per-sample overlong (truncation) mask."""
import jax.numpy as jnp
import numpy as np

from concise_jax import filters, losses, testing, types
from concise_jax.filters import GROUP_FILTERS


def _keep(correct, group_size, **kw):
  batch = testing.make_rollout(correct=correct, length=[3] * len(correct))
  # shaped rewards that vary everywhere: the filter must not look at them
  reward_out = types.make_reward_output(batch, jnp.arange(len(correct), dtype=jnp.float32))
  return np.asarray(GROUP_FILTERS.get("balanced_difficulty")(batch, reward_out,
                                                             group_size=group_size, **kw))


def test_balanced_difficulty_golden_band():
  correct = [0, 0, 0, 0,  1, 0, 0, 0,  1, 1, 0, 0,  1, 1, 1, 0,  1, 1, 1, 1]
  # pass rates 0, .25, .5, .75, 1 → keep the inclusive band [.25, .75]
  np.testing.assert_array_equal(_keep(correct, 4), np.repeat([0, 1, 1, 1, 0], 4).astype(bool))
  # a narrower band keeps only p = .5
  np.testing.assert_array_equal(_keep(correct, 4, p_low=0.4, p_high=0.6),
                                np.repeat([0, 0, 1, 0, 0], 4).astype(bool))
  # DAPO's degenerate band 0 < p < 1 equals nonzero_variance
  batch = testing.make_rollout(correct=correct, length=[3] * 20)
  reward_out = types.make_reward_output(batch, jnp.zeros(20))
  dapo = GROUP_FILTERS.get("nonzero_variance")(batch, reward_out, group_size=4)
  np.testing.assert_array_equal(_keep(correct, 4, p_low=0.01, p_high=0.99), dapo)


def test_balanced_difficulty_single_sample_keeps_nothing():
  np.testing.assert_array_equal(_keep([1, 0, 1], 1), [False] * 3)   # p ∈ {0, 1}


def test_mask_truncated_drops_only_truncated_samples_from_the_loss():
  batch = testing.make_rollout(correct=[1, 0, 0, 1], length=[4, 4, 2, 0], max_len=4)
  # rows 0, 1 hit the cap (truncated); row 3 is empty
  keep_b = filters.overlong.mask_truncated(np.array([True, True, True, False]), batch)
  np.testing.assert_array_equal(keep_b, [False, False, True, False])
  mask_bt = losses.loss_mask(batch, None, keep_b)
  np.testing.assert_array_equal(mask_bt.sum(axis=1), [0, 0, 2, 0])
  # numerator and denominator share the mask: token_mean over the 2 surviving tokens only
  loss_bt = jnp.full((4, 4), 3.0).at[0].set(100.0)
  np.testing.assert_allclose(losses.AGGREGATIONS.get("token_mean")(loss_bt, mask_bt), 3.0)
