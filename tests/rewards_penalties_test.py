"""Cosine / linear length rewards (Yeo et al.) and DAPO's soft overlong punishment."""
import functools

import jax
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS

STATE = ()   # stateless rewards
COS_02PI = 0.80901699                                     # cos(0.2π)


@functools.cache
def _jitted(name, group_size, overrides=()):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get(name), group_size=group_size, **kwargs))


def _rewards(name, batch, group_size=1, **overrides):
  out, _, _ = _jitted(name, group_size, tuple(sorted(overrides.items())))(batch, STATE)
  return np.asarray(out.rewards_b)


def _batch():
  # T = 10 = L_max; the last two rows hit the cap (truncated).
  return testing.make_rollout(correct=[1, 1, 1, 0, 0, 0, 1, 0],
                              length=[0, 2, 5, 0, 2, 5, 10, 10], max_len=10)


def test_cosine_length_golden():
  # correct: 1 + ½(2 − 1)(1 + cos(πL/10)): L=0 → 2; L=2 → 1 + ½(1.80902) = 1.90451; L=5 → 1.5
  # wrong:   0 + ½(−10 − 0)(1 + cos(πL/10)): L=0 → −10; L=2 → −9.04508; L=5 → −5
  # cut off (L = T, truncated): −10 whatever the correctness.
  r = _rewards("cosine_length", _batch())
  np.testing.assert_allclose(
      r, [2, 1 + 0.5 * (1 + COS_02PI), 1.5, -10, -5 * (1 + COS_02PI), -5, -10, -10],
      rtol=1e-6, atol=1e-6)


def test_linear_length_golden_and_difference_from_cosine():
  # correct: 2 − L/10: [2, 1.8, 1.5]; wrong: −10 + 10·L/10: [−10, −8, −5]; cut off −10.
  r = _rewards("linear_length", _batch())
  np.testing.assert_allclose(r, [2, 1.8, 1.5, -10, -8, -5, -10, -10], rtol=1e-6)
  # Same endpoints and midpoint; the cosine stays flatter near L = 0 (1.9045 vs 1.8).
  diff = _rewards("cosine_length", _batch()) - r
  np.testing.assert_allclose(diff[[0, 2, 3, 5, 6, 7]], 0, atol=1e-6)
  np.testing.assert_allclose(diff[1], 0.5 * (1 + COS_02PI) - 0.8, rtol=1e-5)


@pytest.mark.parametrize("name", ["cosine_length", "linear_length"])
def test_explicit_max_len_below_the_cap_counts_as_exceeded(name):
  # T = 16, L_max = 8: L = 8 is the endpoint (1 for correct), L = 12 > L_max → −10.
  batch = testing.make_rollout(correct=[1, 1, 0], length=[8, 12, 8], max_len=16)
  np.testing.assert_allclose(_rewards(name, batch, max_len=8), [1, -10, 0], atol=1e-6)


def test_soft_overlong_style_guide_case():
  batch = testing.make_rollout(correct=[1, 1, 1], length=[48, 56, 64], max_len=64)
  # L_max = 64 (the cap), L_cache = 16: (48 − L)/16 clipped to [−1, 0] → [0, −.5, −1]
  np.testing.assert_allclose(_rewards("soft_overlong", batch, buffer=16), [1.0, 0.5, 0.0])


def test_soft_overlong_wrong_answers_zero_length_and_penalty_factor():
  batch = testing.make_rollout(correct=[0, 0, 1, 1], length=[60, 0, 0, 52], max_len=64)
  # wrong L=60: (48 − 60)/16 = −.75; wrong L=0: 0; correct L=0: 1; correct L=52: 1 − .25
  np.testing.assert_allclose(_rewards("soft_overlong", batch, buffer=16),
                             [-0.75, 0, 1, 0.75])
  np.testing.assert_allclose(_rewards("soft_overlong", batch, buffer=16, penalty_factor=0.5),
                             [-0.375, 0, 1, 0.875])
  # explicit L_max = 40 < T: L = 52 > L_max → −1 (the paper's "> L_max" branch; verl's
  # unclipped form would give −(52 − 24)/16 = −1.75, i.e. 1 − 1.75 = −0.75 for this row).
  np.testing.assert_allclose(_rewards("soft_overlong", batch, buffer=16, max_len=40),
                             [-1, 0, 1, 0])


def test_soft_overlong_rejects_empty_buffer():
  with pytest.raises(ValueError, match="buffer > 0"):
    _rewards("soft_overlong", _batch(), buffer=0)


@pytest.mark.parametrize("name", ["cosine_length", "linear_length", "soft_overlong"])
def test_groups_do_not_matter(name):
  # Per-sample rewards: the grouping (G = 1 or G = 4) does not change any row.
  batch = _batch()
  np.testing.assert_allclose(_rewards(name, batch, 1), _rewards(name, batch, 4))
