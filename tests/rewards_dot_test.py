"""DOT: cut lengths inside all-correct groups, the re-checked reward, loss mask, pass-rate ring."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS, dot


@functools.cache
def _cut(group_size, **kw):
  return jax.jit(functools.partial(dot.cut_lengths_b, group_size=group_size, **kw))


@functools.cache
def _dot(group_size):
  return jax.jit(functools.partial(REWARDS.get("dot"), group_size=group_size))


def test_cut_lengths_golden():
  length = [10, 10, 10, 100, 10, 10, 10, 100]
  correct = [1, 1, 1, 1, 1, 1, 1, 0]
  # Group 0 (all correct): mean 32.5, std (ddof 1) = sqrt((3·22.5² + 67.5²)/3) = 45.
  # α = 3: T = ⌊32.5 + 135⌋ = 167 → nothing cut. α = 1: T = ⌊77.5⌋ = 77, 100 − 77 = 23:
  # cut with margin 16, not with margin 32. Group 1 has a wrong answer → never cut.
  np.testing.assert_array_equal(_cut(4)(np.asarray(length), np.asarray(correct, bool)), length)
  np.testing.assert_array_equal(
      _cut(4, alpha=1.0, margin=32.0)(np.asarray(length), np.asarray(correct, bool)), length)
  np.testing.assert_array_equal(
      _cut(4, alpha=1.0, margin=16.0)(np.asarray(length), np.asarray(correct, bool)),
      [10, 10, 10, 77, 10, 10, 10, 100])


def test_cut_relative_margin_and_threshold():
  length, correct = np.asarray([100, 100, 100, 400]), np.asarray([1, 1, 1, 0], bool)
  # Threshold 0.75 lets this group (p = 3/4) be cut. mean 175, std = sqrt((3·75² + 225²)/3)
  # = 150; α = 1: T = 325; L − T = 75. margin 0.1 → m = max(⌊400·0.1⌋, 16) = 40 → cut;
  # margin 0.2 → m = 80 → not cut.
  np.testing.assert_array_equal(
      _cut(4, alpha=1.0, margin=0.1, success_threshold=0.75)(length, correct),
      [100, 100, 100, 325])
  np.testing.assert_array_equal(
      _cut(4, alpha=1.0, margin=0.2, success_threshold=0.75)(length, correct), length)


def test_cut_single_sample_and_zero_lengths():
  # G = 1: std 0 → T = L, L − T = 0 < margin: never cut. All-zero group: T = 0, never cut.
  np.testing.assert_array_equal(
      _cut(1, margin=0.5)(np.asarray([0, 50, 900]), np.asarray([1, 1, 1], bool)), [0, 50, 900])
  np.testing.assert_array_equal(
      _cut(2)(np.asarray([0, 0]), np.asarray([1, 1], bool)), [0, 0])


def test_reward_uses_recheck_only_on_cut_rows():
  batch = testing.make_rollout(
      [1, 1, 1, 0], [4, 3, 2, 4],
      features={"cut_length": np.asarray([2, 3, 1, 1], np.int32),   # rows 0, 2 cut; 3 wrong
                "cut_correct": np.asarray([0, 0, 1, 1], bool)})
  out, state, metrics = _dot(4)(batch, dot.init_pass_rates(4))
  # Row 0 cut, re-check fails → 0; row 1 not cut → its own 1; row 2 cut, still right → 1;
  # row 3 is wrong: DOT never cuts wrong answers, its (spurious) re-check is ignored → 0.
  np.testing.assert_allclose(out.rewards_b, [0, 1, 1, 0])
  # Cut rows keep positions < cut_length (padding beyond L is masked by mask_bt anyway).
  np.testing.assert_allclose(out.loss_mask_bt, [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0],
                                                [1, 1, 1, 1]])
  np.testing.assert_allclose(metrics["dot/cut_frac"], 0.5)
  # 2 + 1 cut tokens out of 4 + 3 + 2 + 4 = 13.
  np.testing.assert_allclose(metrics["dot/cut_tokens_frac"], 3 / 13, rtol=1e-6)
  np.testing.assert_allclose(metrics["dot/recheck_pass"], 0.5)
  # One group with rewards {0, 1} → pass rate 1, written at slot 0.
  np.testing.assert_allclose(state["rate_w"][:2], [1.0, 0.0])
  assert int(state["count"]) == 1


def test_pass_rate_ring_buffer_wraps():
  state = dot.init_pass_rates(2, pass_rate_window=2)
  same = testing.make_rollout([1, 1, 1, 1], [2, 2, 2, 2],
                              features={"cut_length": np.full(4, 2, np.int32),
                                        "cut_correct": np.ones(4, bool)})
  mixed = same.replace(correct_b=np.asarray([1, 0, 1, 1], bool))
  fn = _dot(2)
  for batch in (mixed, same, mixed):      # pass rates 0.5, 0, 0.5 into a window of 2
    _, state, _ = fn(batch, state)
  np.testing.assert_allclose(state["rate_w"], [0.5, 0.0])
  assert int(state["count"]) == 3


def test_missing_host_fields_fail_loudly():
  with pytest.raises(ValueError, match="cut_length"):
    _dot(2)(testing.make_rollout([1, 1], [2, 3]), dot.init_pass_rates(2))


@pytest.mark.parametrize("alpha, cut_to", [(1.5, 100), (1.4, 95)])
def test_one_outlier_in_four_lies_exactly_one_and_a_half_deviations_out(alpha, cut_to):
  # Lengths (0, 0, 0, 100): mean 25, sample std 50, so the outlier sits at (G-1)/sqrt(G) = 1.5
  # deviations, the most any group of 4 allows: alpha = 1.5 can never cut (config_check rejects
  # it), 1.4 cuts it to floor(25 + 1.4 * 50) = 95.
  length_b = jnp.array([0, 0, 0, 100], jnp.int32)
  cut_b = dot.cut_lengths_b(length_b, jnp.ones(4, bool), group_size=4, alpha=alpha, margin=1.0)
  np.testing.assert_array_equal(np.asarray(cut_b), [0, 0, 0, cut_to])
