"""PEAR: phase entropies, the clipped max(0, H_think − α·H_answer) penalty and its edge cases."""
import functools

import jax
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS

STATE = ()   # stateless rewards
# Rows: correct, correct, wrong, correct without an answer phase (missing tag), empty correct.
ENTROPY = [[2.0, 2.0, 1.0, 0.0], [0.5, 0.5, 1.0, 1.0], [3.0, 1.0, 1.0, 1.0],
           [0.2, 0.4, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
THINK = [[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]


def _batch():
  return testing.make_rollout([1, 1, 0, 1, 1], [4, 4, 4, 2, 0], max_len=4,
                              features={"entropy": np.asarray(ENTROPY, np.float32),
                                        "think_mask": np.asarray(THINK, np.float32)})


@functools.cache
def _pear(**overrides):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get("pear"), group_size=1, **kwargs))


def test_pear_golden_defaults():
  out, _, metrics = _pear()(_batch(), STATE)
  # Row 0: H_think = 2, H_answer = 0.5 → max(0, 2 − 0.5) = 1.5 → clipped to 0.5 → 1 − 0.5.
  # Row 1: 0.5 − 1 < 0 → no penalty → 1. Row 2 wrong: not penalised by default → 0.
  # Row 3: no answer phase → H_answer = 0; H_think = mean(0.2, 0.4) = 0.3 → 1 − 0.3.
  # Row 4: empty → both phases 0 → 1.
  np.testing.assert_allclose(out.rewards_b, [0.5, 1.0, 0.0, 0.7, 1.0], rtol=1e-6)
  # Mean H_think over rows: (2 + 0.5 + 3 + 0.3 + 0)/5 = 1.16.
  np.testing.assert_allclose(metrics["pear/h_think"], 1.16, rtol=1e-6)


def test_pear_unclipped_alpha_and_wrong_answers():
  out, _, _ = _pear(max_penalty=10.0, alpha=2.0, penalize_wrong=True)(_batch(), STATE)
  # α = 2: row 0: 2 − 2·0.5 = 1 → 0; row 1: 0.5 − 2 < 0 → 1;
  # row 2 (wrong, now penalised): H_think 3, H_answer 1 → 3 − 2 = 1 → 0 − 1 = −1;
  # row 3: 0.3 → 0.7; row 4: 1.
  np.testing.assert_allclose(out.rewards_b, [0.0, 1.0, -1.0, 0.7, 1.0], rtol=1e-6)


def test_pear_all_correct_all_wrong_and_missing_inputs():
  batch = _batch()
  wrong = batch.replace(correct_b=np.zeros(5, bool))
  np.testing.assert_allclose(_pear()(wrong, STATE)[0].rewards_b, np.zeros(5))
  with pytest.raises(ValueError, match="'think_mask'"):
    _pear()(batch.replace(features={"entropy": batch.features["entropy"]}), STATE)
