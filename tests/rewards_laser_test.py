"""LASER / LASER-D / LASER-DE: step rewards, accuracy bands, exploration bonus, monitor targets."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS, laser

STATE = laser.init_band_targets(8)   # (low, medium, high) targets, 0 = unset


@functools.cache
def _fn(name, group_size, **overrides):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get(name), group_size=group_size, **kwargs))


def _rewards(name, batch, group_size, state=STATE, **overrides):
  out, new_state, _ = _fn(name, group_size, **overrides)(batch, state)
  np.testing.assert_array_equal(new_state, state)  # the host monitor owns the update
  return np.asarray(out.rewards_b)


def test_laser_golden_and_variants():
  # correct short, correct long, wrong with an answer, no answer (format_ok false); L_T = 5.
  batch = testing.make_rollout([1, 1, 0, 0], [3, 8, 2, 2], format_ok=[1, 1, 1, 0])
  # C = [1, 1, −0.5, −1]; "reward": +0.5 on correct & L ≤ 5.
  np.testing.assert_allclose(_rewards("laser", batch, 4, target_length=5), [1.5, 1, -0.5, -1])
  # "penalty": −0.5 on correct & L > 5; "hybrid": ±0.5 on correct answers.
  np.testing.assert_allclose(
      _rewards("laser", batch, 4, target_length=5, length_reward_type="penalty"),
      [1, 0.5, -0.5, -1])
  np.testing.assert_allclose(
      _rewards("laser", batch, 4, target_length=5, length_reward_type="hybrid"),
      [1.5, 0.5, -0.5, -1])


def test_laser_boundary_zero_length_and_truncated():
  batch = testing.make_rollout([1, 1, 0], [5, 0, 8], max_len=8, format_ok=[1, 1, 0])
  # L = L_T is within; an empty correct row is within; the truncated row is wrong w/o answer.
  np.testing.assert_allclose(_rewards("laser", batch, 1, target_length=5), [1.5, 1.5, -1])


def test_bands_from_group_accuracy():
  # G = 3 with 0, 1, 2, 3 correct: p = 0 low, 1/3 medium (≥ 1/3), 2/3 high (≥ 2/3), 1 high.
  correct = [0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1]
  np.testing.assert_array_equal(laser.band_b(jnp.asarray(correct, bool), 3),
                                np.repeat([0, 1, 2, 2], 3))
  # G = 1: a single sample is low (wrong) or high (right).
  np.testing.assert_array_equal(laser.band_b(jnp.asarray([0, 1], bool), 1), [0, 2])


def test_laser_d_band_targets():
  state = jnp.asarray([30.0, 20.0, 10.0])
  # Group 0 (1 of 3 correct: medium, L_T 20), group 1 (3 of 3: high, L_T 10).
  batch = testing.make_rollout([1, 0, 0, 1, 1, 1], [20, 5, 50, 10, 11, 3])
  # Group 0: 1 + 0.5 (20 ≤ 20), −0.5, −0.5. Group 1: 1.5, 1 (11 > 10), 1.5.
  np.testing.assert_allclose(_rewards("laser_d", batch, 3, state=state),
                             [1.5, -0.5, -0.5, 1.5, 1.0, 1.5])


def test_laser_d_unset_targets_mean_no_limit():
  batch = testing.make_rollout([1, 0], [10_000, 3])
  # band_targets = 0 (before the first monitor pass): every correct answer is within.
  np.testing.assert_allclose(_rewards("laser_d", batch, 2), [1.5, -0.5])


def test_laser_de_exploration_bonus():
  state = jnp.asarray([4.0, 4.0, 4.0])
  batch = testing.make_rollout(
      [0, 0, 0, 0, 0, 1], [9, 9, 3, 9, 9, 2], format_ok=[1, 1, 1, 0, 1, 1],
      features={"repetitive": np.asarray([0, 1, 0, 0, 0, 0], bool)})
  # G = 6, 1 correct → p = 1/6 → low band, L_T = 4.
  # Row 0 wrong, long, not repetitive: −0.5 + 0.5 = 0. Row 1 repetitive: −0.5. Row 2 short: −0.5.
  # Row 3 without an answer: −1 (no bonus). Row 4 like row 0: 0. Row 5 correct & short: 1.5.
  np.testing.assert_allclose(_rewards("laser_de", batch, 6, state=state),
                             [0, -0.5, -0.5, -1, 0, 1.5])
  with pytest.raises(ValueError, match="'repetitive'"):
    _fn("laser_de", 6)(batch.replace(features={}), state)


def test_laser_de_all_wrong_and_all_correct_groups():
  state = jnp.asarray([2.0, 6.0, 6.0])
  batch = testing.make_rollout([0, 0, 1, 1], [5, 1, 5, 9],
                               features={"repetitive": np.zeros(4, bool)})
  # All wrong: low band, L_T = 2: row 0 long → 0, row 1 short → −0.5.
  # All correct: high band, L_T = 6: 1.5, 1.
  np.testing.assert_allclose(_rewards("laser_de", batch, 2, state=state), [0, -0.5, 1.5, 1])


def _targets(length_mn, correct_mn, **kw):
  kw = {"grid_lower": 10, "grid_upper": 70, "grid_step": 10, "expected_correct": 1,
        "max_len": 100, **kw}
  return np.asarray(laser.band_targets_from_monitor(
      jnp.asarray(length_mn), jnp.asarray(correct_mn, bool), **kw))


@pytest.mark.integration  # eager XLA compiles: ~4 s on 2 cores
def test_band_targets_from_monitor_golden():
  # n = 3: prompt A 3/3 → high, B 2/3 → medium (acc ≤ 2/3), C 0/3 → low.
  length = [[10, 20, 30], [15, 25, 35], [50, 60, 70]]
  correct = [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
  # K = 1 (low), ⌊3/3⌋ = 1 (medium), ⌊6/3⌋ = 2 (high); need ⌊cov·K⌋ ≥ 1 on grid 10..70.
  # high: cov(10) = 1/3 → ⌊2/3⌋ = 0; cov(20) = 2/3 → ⌊4/3⌋ = 1 → 20.
  # medium: needs cov = 1 → 35 ≤ Lc → 40. low: cov = 1 at 70 → 70.
  np.testing.assert_allclose(_targets(length, correct), [70, 40, 20])


def test_band_targets_empty_band_and_unreachable():
  # Only high prompts: low and medium are empty → max_len; coverage counts wrong answers too.
  length = [[10, 20, 80], [10, 20, 30]]
  correct = [[1, 1, 1], [1, 1, 1]]
  # high: 6 responses, cov(10) = 2/6 → ⌊2/3⌋ = 0; cov(20) = 4/6 → ⌊4/3⌋ = 1 → 20.
  np.testing.assert_allclose(_targets(length, correct), [100, 100, 20])
  # K_exp = 2 is unreachable with K = 2 unless cov = 1, which 80 > 70 prevents → max_len.
  np.testing.assert_allclose(_targets(length, correct, expected_correct=2), [100, 100, 100])


def test_band_targets_code_form_vs_correct_only_reading():
  # One medium prompt (n = 3, 2/3 correct, K = 1): its wrong answer is the shortest.
  length, correct = [[10, 30, 50]], [[0, 1, 1]]
  # Code (all responses): needs cov = 1 → 50. Correct-only reading: cov counts correct ≤ Lc
  # over all 3 responses, so it tops out at 2/3 → ⌊2/3⌋ = 0 < 1 → never reached → max_len.
  np.testing.assert_allclose(_targets(length, correct), [100, 50, 100])
  np.testing.assert_allclose(_targets(length, correct, correct_only=True), [100, 100, 100])
  # A high prompt (3/3, K = 2): both forms agree when every response is correct.
  length, correct = [[10, 30, 50]], [[1, 1, 1]]
  # cov(30) = 2/3 → ⌊4/3⌋ = 1 → 30 in both forms.
  np.testing.assert_allclose(_targets(length, correct), [100, 100, 30])
  np.testing.assert_allclose(_targets(length, correct, correct_only=True), [100, 100, 30])
