"""DECS per-position advantage: hand-computed values, ragged groups, edge cases, invariances."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import types
from concise_jax.advantages import ADVANTAGES

decs_position = ADVANTAGES.get("decs_position")


def _out(r_bt):
  r_bt = jnp.asarray(r_bt, jnp.float32)
  return types.RewardOutput(rewards_b=r_bt.mean(axis=1), loss_mask_bt=jnp.ones_like(r_bt),
                            group_flags_b=jnp.zeros(r_bt.shape[0]), token_rewards_bt=r_bt)


def _run(r_bt, mask_bt, g, **kwargs):
  adv, metrics = jax.jit(lambda o, m: decs_position(o, None, m, group_size=g, eps=0.0,
                                                    **kwargs))(_out(r_bt), jnp.asarray(mask_bt))
  return np.asarray(adv), metrics


def test_ragged_group_of_three_hand_computed():
  # Group of 3; lengths 3, 2, 1 (mask). Token rewards:
  #   row0: 1.1 1.1 1.05   row1: 1.1 1.1 .   row2: 0 . .
  # t=0: values 1.1, 1.1, 0 → mean 0.7333, deviations .3667 .3667 −.7333,
  #      unbiased var = (.1344 + .1344 + .5378) / 2 = .4033, std .6351 → A .5774 .5774 −1.1547
  # t=1: values 1.1, 1.1 (row2 has no token) → all equal → 0, 0
  # t=2: only row0 → no group mate → 0
  r = [[1.1, 1.1, 1.05], [1.1, 1.1, 0.0], [0.0, 0.0, 0.0]]
  m = [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
  adv, metrics = _run(r, m, 3)
  np.testing.assert_allclose(adv, [[0.57735, 0, 0], [0.57735, 0, 0], [-1.1547, 0, 0]],
                             atol=1e-4)
  np.testing.assert_allclose(float(metrics["adv/compared_frac"]), 5 / 6, rtol=1e-6)


def test_redundant_tokens_of_a_correct_answer_score_below_its_necessary_ones():
  # Two correct answers of 2 tokens; row1's 2nd token is redundant (bonus 0.1·(1 − 2/4) = 0.05):
  # t=0 equal → 0; t=1: 1.1 vs 1.05 → mean 1.075, dev ±.025, std (ddof 1) .035355 → ±0.7071.
  adv, _ = _run([[1.1, 1.1], [1.1, 1.05]], [[1, 1], [1, 1]], 2)
  np.testing.assert_allclose(adv, [[0, 0.70711], [0, -0.70711]], atol=1e-4)


@pytest.mark.parametrize("r", [[[1.1, 1.1], [1.1, 1.1]], [[0.0, 0.0], [0.0, 0.0]]])
def test_all_correct_or_all_wrong_equal_rewards_give_zero(r):
  adv, _ = _run(r, [[1, 1], [1, 1]], 2)
  np.testing.assert_array_equal(adv, 0.0)


def test_single_sample_zero_length_and_masked_rows():
  adv, _ = _run([[1.1, 1.1]], [[1, 1]], 1)                     # G = 1: nobody to compare
  np.testing.assert_array_equal(adv, 0.0)
  # Row 1 is zero-length; row 2 is filtered out (mask 0): at t=0 only rows 0 and 3 compare.
  r = [[1.1, 1.0], [0.0, 0.0], [5.0, 5.0], [0.0, 0.0]]
  m = [[1, 1], [0, 0], [0, 0], [1, 0]]
  adv, _ = _run(r, m, 4)
  # t=0: 1.1 vs 0 → ±0.55 / std(ddof 1) .7778 → ±0.7071; t=1: only row 0 → 0.
  np.testing.assert_allclose(adv, [[0.70711, 0], [0, 0], [0, 0], [-0.70711, 0]], atol=1e-4)


@pytest.mark.integration  # eager XLA compiles: ~3 s on 2 cores
def test_permuting_groups_permutes_advantages_and_sequence_rewards_fill_tokens():
  rng = np.random.default_rng(0)
  r = rng.normal(size=(6, 5)).astype(np.float32)
  m = (rng.random((6, 5)) < 0.7).astype(np.float32)
  adv, _ = _run(r, m, 3)
  perm = np.r_[3:6, 0:3]
  adv_perm, _ = _run(r[perm], m[perm], 3)
  np.testing.assert_allclose(adv_perm, adv[perm], atol=1e-6)
  # Without token rewards each response's sequence reward fills its tokens: 1 vs 0 at t=0
  # (±0.7071), and only row 0 has a token at t=1.
  out = types.RewardOutput(rewards_b=jnp.asarray([1.0, 0.0]), loss_mask_bt=jnp.ones((2, 2)),
                           group_flags_b=jnp.zeros(2))
  adv, _ = decs_position(out, None, jnp.asarray([[1.0, 1.0], [1.0, 0.0]]), group_size=2)
  np.testing.assert_allclose(adv, [[0.70711, 0], [-0.70711, 0]], atol=1e-4)
