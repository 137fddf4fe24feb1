"""GTPO's token advantage: conflict detection (prefix and suffix), entropy gate, divisors."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing, types
from concise_jax.advantages import ADVANTAGES

# G = 4, T = 4. Rows 0, 1 correct (A > 0), rows 2, 3 wrong (A < 0); row 3 has 3 tokens.
TOKENS_BT = np.array([[5, 6, 7, 9], [5, 8, 7, 9], [5, 6, 3, 9], [4, 4, 4, 0]], np.int32)
ENTROPY_BT = np.array([[.1] * 4, [.9] * 4, [.1] * 4, [.1, .1, .1, 5.0]], np.float32)  # pad: 5


def _gtpo(rewards=(1, 1, 0, 0), lengths=(4, 4, 4, 3), tokens=TOKENS_BT, entropy=ENTROPY_BT,
          group_size=4, **overrides):
  batch = testing.make_rollout(correct=np.asarray(rewards) > 0, length=lengths, max_len=4,
                               features={"entropy": entropy})
  batch = batch.replace(tokens_bt=jnp.asarray(tokens))
  reward_out = types.make_reward_output(batch, jnp.asarray(rewards, jnp.float32))
  fn = jax.jit(functools.partial(ADVANTAGES.get("gtpo"), group_size=group_size,
                                 **overrides))
  adv_bt, metrics = fn(reward_out, batch, batch.mask_bt)
  return np.asarray(adv_bt), metrics


def test_gtpo_golden():
  adv_bt, metrics = _gtpo()
  # GRPO A = ±0.5 / (0.577350 + 1e-6) = ±0.866024. Entropy gate (0.7): row 1 (H = .9) → 0;
  # others A − 0.1·0.1: row 0 0.856024, rows 2, 3 −0.876024 (row 3's pad entropy ignored).
  # Forward conflicts (same token, same position, in a positive AND a negative row, leading
  # run): t0 token 5 (rows 0, 1, 2); t1 token 6 (rows 0, 2); t2 none → runs row0 [t0, t1],
  # row1 [t0], row2 [t0, t1]. Reverse (aligned at ends): last token 9 in rows 0, 1, 2 → t3;
  # the next-to-last 7/7/3 is not shared across signs. Row 3 shares nothing.
  # λ: positive rows 2 on conflicts, negative rows 0; divided by #conflicts (3, 2, 3, 1).
  a0, a2 = 0.5 / (np.sqrt(1 / 3) + 1e-6) - 0.01, -0.5 / (np.sqrt(1 / 3) + 1e-6) - 0.01
  want_bt = np.array([[a0 / 3 * 2, a0 / 3 * 2, a0 / 3, a0 / 3 * 2],
                      [0, 0, 0, 0],
                      [0, 0, a2 / 3, 0],
                      [a2, a2, a2, 0]])
  np.testing.assert_allclose(adv_bt, want_bt, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(want_bt[0, 0], 0.570683, rtol=1e-5)
  # conflict tokens: 3 + 2 + 3 + 0 of 15 valid
  np.testing.assert_allclose(metrics["adv/conflict_frac"], 8 / 15, rtol=1e-6)
  np.testing.assert_allclose(metrics["adv/entropy_gated_frac"], 0.25)


def test_gtpo_without_conflict_divisor_is_the_readme_formula():
  adv_bt, _ = _gtpo(divide_by_conflicts=False)
  a0 = 0.5 / (np.sqrt(1 / 3) + 1e-6) - 0.01
  np.testing.assert_allclose(adv_bt[0], [2 * a0, 2 * a0, a0, 2 * a0], rtol=1e-5)


def test_gtpo_only_leading_runs_count():
  tokens = TOKENS_BT.copy()
  tokens[2] = [4, 6, 3, 8]           # t1 still matches row 0, but t0 no longer: no forward run
  adv_bt, _ = _gtpo(tokens=tokens)
  assert np.all(adv_bt[2, [0, 1, 3]] != 0)       # no conflicts in row 2 at all
  a0 = 0.5 / (np.sqrt(1 / 3) + 1e-6) - 0.01
  # Row 0 now conflicts nowhere (row 3 starts with 4 too, but row 3 shares nothing else and
  # t0 = 5 is not in any negative row).
  np.testing.assert_allclose(adv_bt[0], [a0] * 4, rtol=1e-5)


@pytest.mark.parametrize("rewards", [(1, 1, 1, 1), (0, 0, 0, 0)])
def test_all_equal_group_has_no_conflicts_only_the_entropy_term(rewards):
  adv_bt, metrics = _gtpo(rewards=rewards)
  # A = 0 everywhere → no signs, no conflicts; A' = −0.1·H (row 1 gated → 0)
  want_bt = -0.01 * np.array([[1] * 4, [0] * 4, [1] * 4, [1, 1, 1, 0]])
  np.testing.assert_allclose(adv_bt, want_bt, rtol=1e-5, atol=1e-8)
  assert metrics["adv/conflict_frac"] == 0


def test_single_sample_and_zero_length_rows():
  adv_bt, _ = _gtpo(rewards=(1, 0, 1, 0), group_size=1)       # G = 1: A = 0, no conflicts
  np.testing.assert_allclose(adv_bt[0], [-0.01] * 4, rtol=1e-5)
  adv_bt, _ = _gtpo(lengths=(4, 0, 4, 3))
  assert np.all(adv_bt[1] == 0) and np.all(np.isfinite(adv_bt))


def test_missing_entropy_fails_loudly():
  batch = testing.make_rollout(correct=[1, 0], length=[2, 2])
  reward_out = types.make_reward_output(batch, jnp.array([1.0, 0.0]))
  with pytest.raises(ValueError, match="'entropy'"):
    ADVANTAGES.get("gtpo")(reward_out, batch, batch.mask_bt, group_size=2)
