"""DLER and DA-DLER rewards: hand-computed values and edge cases (arXiv:2510.15110)."""
import functools

import jax
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS

STATE = ()   # stateless rewards


@functools.cache
def _jitted(name, group_size, overrides=()):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get(name), group_size=group_size, **kwargs))


def _run(name, batch, group_size, **overrides):
  out, state, metrics = _jitted(name, group_size, tuple(sorted(overrides.items())))(batch, STATE)
  return out, state, metrics


def test_dler_truncated_is_zero_even_if_verified_correct():
  # T = 8: rows of length 8 are truncated. Row 1 is "correct" by the verifier (e.g. a number
  # found in the cut text) but cut off → 0; plain correctness would give it 1.
  batch = testing.make_rollout(correct=[1, 1, 0, 1], length=[3, 8, 5, 0], max_len=8)
  out, _, metrics = _run("dler", batch, 2)
  np.testing.assert_array_equal(out.rewards_b, [1, 0, 0, 1])       # zero-length correct: 1
  np.testing.assert_allclose(metrics["dler/cut_frac"], 1 / 4)       # one of four rows
  np.testing.assert_array_equal(_run("correctness", batch, 2)[0].rewards_b, [1, 1, 0, 1])


def test_dler_budget_below_the_cap():
  # L_T = 5 < T = 8: L ≤ 5 passes, 6 does not; the wrong row stays 0.
  batch = testing.make_rollout(correct=[1, 1, 1, 0], length=[3, 5, 6, 2], max_len=8)
  out, _, metrics = _run("dler", batch, 4, max_len=5)
  np.testing.assert_array_equal(out.rewards_b, [1, 1, 0, 0])
  np.testing.assert_allclose(metrics["dler/cut_frac"], 1 / 4)


def test_dler_all_correct_all_wrong_and_single_sample():
  batch = testing.make_rollout(correct=[1, 1, 0, 0], length=[2, 4, 2, 4], max_len=8)
  np.testing.assert_array_equal(_run("dler", batch, 2)[0].rewards_b, [1, 1, 0, 0])
  np.testing.assert_array_equal(_run("dler", batch, 1)[0].rewards_b, [1, 1, 0, 0])


def _da_batch():
  # T = 8, G = 4, caps (hard 8, easy 4), threshold 0.5.
  return testing.make_rollout(
      correct=[1, 1, 1, 0,   1, 0, 0, 0,   1, 1, 0, 0],
      length=[2, 4, 6, 3,   6, 2, 2, 2,   5, 3, 1, 1], max_len=8)


def test_da_dler_golden():
  out, _, metrics = _run("da_dler", _da_batch(), 4, caps=(8, 4))
  # group 0: p = 3/4 ≥ 0.5 → easy, cap 4 → L = 2, 4 pass, 6 cut → [1, 1, 0, 0]
  # group 1: p = 1/4 → hard, cap 8 → [1, 0, 0, 0]
  # group 2: p = 2/4 = 0.5 exactly → easy (>=), cap 4 → L = 5 cut, 3 passes → [0, 1, 0, 0]
  np.testing.assert_array_equal(out.rewards_b, [1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0])
  np.testing.assert_array_equal(out.group_flags_b, [1] * 4 + [0] * 4 + [1] * 4)
  np.testing.assert_allclose(metrics["da_dler/easy_frac"], 2 / 3)
  np.testing.assert_allclose(metrics["da_dler/cut_frac"], 2 / 12)   # rows 2 and 8


def test_da_dler_truncated_answers_do_not_make_a_group_easy():
  # Rows 0 and 1 hit T = 8 (truncated) while "correct": ok = [0, 0, 1, 0] → p = 1/4 → hard
  # (cap 8); counting them would give p = 3/4 → easy. Truncated rows still score 0.
  batch = testing.make_rollout(correct=[1, 1, 1, 0], length=[8, 8, 6, 1], max_len=8)
  out, _, _ = _run("da_dler", batch, 4, caps=(8, 4))
  np.testing.assert_array_equal(out.rewards_b, [0, 0, 1, 0])
  np.testing.assert_array_equal(out.group_flags_b, [0, 0, 0, 0])


def test_da_dler_three_tiers():
  # thresholds (0.25, 0.75) → caps (8, 6, 4) for p < .25, .25 ≤ p < .75, p ≥ .75.
  batch = testing.make_rollout(correct=[1, 1, 1, 1,   1, 1, 0, 0,   1, 0, 0, 0,   0, 0, 0, 0],
                               length=[5] * 4 + [7, 5, 1, 1] + [7, 1, 1, 1] + [1] * 4,
                               max_len=10)
  out, _, _ = _run("da_dler", batch, 4, thresholds=(0.25, 0.75), caps=(8, 6, 4))
  # p = 1 → tier 2, cap 4: all L = 5 cut.  p = .5 → tier 1, cap 6: L = 7 cut, 5 passes.
  # p = .25 → tier 1 (>=), cap 6: L = 7 cut.  p = 0 → tier 0: all wrong.
  np.testing.assert_array_equal(out.rewards_b, [0] * 4 + [0, 1, 0, 0] + [0] * 8)
  np.testing.assert_array_equal(out.group_flags_b, [2] * 4 + [1] * 8 + [0] * 4)


def test_da_dler_with_equal_caps_is_dler_and_single_sample_groups():
  batch = _da_batch()
  np.testing.assert_array_equal(_run("da_dler", batch, 4, caps=(8, 8))[0].rewards_b,
                                _run("dler", batch, 4)[0].rewards_b)
  # G = 1: each sample is its own group, p ∈ {0, 1}; correct ones are easy (cap 4).
  out, _, _ = _run("da_dler", batch, 1, caps=(8, 4))
  np.testing.assert_array_equal(out.rewards_b, [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])


def test_da_dler_rejects_mismatched_caps():
  with pytest.raises(ValueError, match="len\\(thresholds\\) \\+ 1"):
    _run("da_dler", _da_batch(), 4, caps=(8, 6, 4))
