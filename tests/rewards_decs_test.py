"""DECS: token rewards on redundant tokens, sequence reward, and the kappa curriculum state."""
import functools

import jax
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS, decs


@functools.cache
def _decs(**overrides):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get("decs"), group_size=2, **kwargs))


def _batch(redundant, correct=(1, 1, 0, 1), length=(4, 2, 3, 0)):
  return testing.make_rollout(list(correct), list(length), max_len=4,
                              features={"redundant_mask": np.asarray(redundant, np.float32)})


RED_1 = [[0, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]


def test_token_and_sequence_rewards_golden():
  out, _, metrics = _decs()(_batch(RED_1), decs.init_curriculum(4))
  # β = 0.1, L_pad = 4. Row 0 (L 4): necessary 1.1, redundant 1 + 0.1·(1 − 4/4) = 1.0.
  # Row 1 (L 2): redundant 1 + 0.1·(1 − 2/4) = 1.05. Row 2 wrong: 0 (marks ignored).
  # Row 3 empty: no tokens.
  np.testing.assert_allclose(out.token_rewards_bt, [[1.1, 1.1, 1.0, 1.0], [1.1, 1.05, 0, 0],
                                                    [0, 0, 0, 0], [0, 0, 0, 0]], rtol=1e-6)
  # Token means: 4.2/4 = 1.05, 2.15/2 = 1.075, 0, and s·(1 + β) = 1.1 for the empty row.
  np.testing.assert_allclose(out.rewards_b, [1.05, 1.075, 0.0, 1.1], rtol=1e-6)
  # Redundant tokens of correct rows: 2 + 1 of 9 completion tokens.
  np.testing.assert_allclose(metrics["decs/redundant_frac"], 3 / 9, rtol=1e-6)


def test_kappa_over_three_batches():
  state = decs.init_curriculum(4)
  # Batch 1: necessary shares of correct rows 2/4, 1/2, 1 (empty) → ρ = 2/3; no previous
  # ratio → κ stays 0, prev = 2/3.
  _, state, _ = _decs()(_batch(RED_1), state)
  np.testing.assert_allclose([state["kappa"], state["prev_ratio"]], [0.0, 2 / 3], rtol=1e-6)
  # Batch 2: nothing redundant → ρ = 1 → κ = 0 + 0.2·(1 − 2/3) = 1/15.
  _, state, _ = _decs()(_batch(np.zeros((4, 4))), state)
  np.testing.assert_allclose([state["kappa"], state["prev_ratio"]], [1 / 15, 1.0], rtol=1e-6)
  # Batch 3: no correct answer → no ratio, state unchanged.
  _, state, _ = _decs()(_batch(RED_1, correct=(0, 0, 0, 0)), state)
  np.testing.assert_allclose([state["kappa"], state["prev_ratio"]], [1 / 15, 1.0], rtol=1e-6)


def test_all_wrong_group_and_single_length_row_and_missing_mask():
  out, _, _ = _decs()(_batch(np.ones((4, 4)), correct=(0, 0, 0, 0)), decs.init_curriculum(4))
  np.testing.assert_allclose(out.rewards_b, np.zeros(4))
  # A fully redundant correct row still beats any wrong row: 1 + β·(1 − L/L_pad) ≥ 1 > 0.
  out, _, _ = _decs(beta=0.5)(_batch(np.ones((4, 4)), correct=(1, 0, 1, 0),
                                     length=(4, 4, 1, 1)), decs.init_curriculum(4))
  np.testing.assert_allclose(out.rewards_b, [1.0, 0.0, 1.375, 0.0], rtol=1e-6)
  with pytest.raises(ValueError, match="redundant_mask"):
    _decs()(testing.make_rollout([1, 1], [1, 1]), decs.init_curriculum(2))
