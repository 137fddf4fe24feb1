"""CEEH: golden rewards and per-prompt state over three steps, hard flags, entropy fields."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing, types
from concise_jax.rewards import REWARDS, ceeh


@functools.cache
def _ceeh(group_size, **overrides):
  kwargs = {"entropy_mode": "none", **overrides}
  return jax.jit(functools.partial(REWARDS.get("ceeh"), group_size=group_size, **kwargs))


def _step(state, correct, length, prompt_index, group_size=2, **overrides):
  batch = testing.make_rollout(correct, length, prompt_index=prompt_index)
  out, new_state, metrics = _ceeh(group_size, **overrides)(batch, state)
  return out, new_state, metrics


@pytest.mark.integration  # eager XLA compiles: ~4 s on 2 cores
def test_three_steps_rewards_and_state():
  state = ceeh.init_ceeh(2)
  # Step 1, both prompts unseen: mean(acc_ema) = −1 → nobody hard; len_ref = 0 → no length term.
  out, state, _ = _step(state, [1, 1, 1, 0], [10, 20, 30, 40], [0, 0, 1, 1])
  np.testing.assert_allclose(out.rewards_b, [1, 1, 1, 0])
  np.testing.assert_allclose(out.group_flags_b, [0, 0, 0, 0])
  # First history: len_ref = shortest correct (10, 30); acc_ema = p (1, 0.5); counts 1.
  np.testing.assert_allclose(state["len_ref_n"], [10, 30])
  np.testing.assert_allclose(state["acc_ema_n"], [1.0, 0.5])
  np.testing.assert_allclose(state["count_n"], [1, 1])

  # Step 2: mean(acc_ema) = 0.75 → prompt 1 (p = 0.5) is hard, prompt 0 (p = 1) is not.
  # lr = 0.1·(ref − L)/ref: prompt 0: (10−5)/10·0.1 = 0.05, (10−20)/10·0.1 = −0.1;
  # prompt 1 (p = 0.5 ≥ ema 0.5): (30−24)/30·0.1 = 0.02; its wrong answer gets 0.
  out, state, metrics = _step(state, [1, 1, 1, 0], [5, 20, 24, 8], [0, 0, 1, 1])
  np.testing.assert_allclose(out.rewards_b, [1.05, 0.9, 1.02, 0.0], rtol=1e-6)
  np.testing.assert_allclose(out.group_flags_b, [0, 0, 1, 1])
  np.testing.assert_allclose(metrics["ceeh/hard_frac"], 0.5)
  # len_ref: m = 5 < 10 → 0.2·5 + 0.8·10 = 9; m = 24 < 30 → 0.2·24 + 0.8·30 = 28.8.
  # acc_ema: p = 1 is not > 1 → 0.05·1 + 0.95·1 = 1; p = 0.5 not > 0.5 → 0.5.
  np.testing.assert_allclose(state["len_ref_n"], [9.0, 28.8], rtol=1e-6)
  np.testing.assert_allclose(state["acc_ema_n"], [1.0, 0.5], rtol=1e-6)

  # Step 3: prompt 0 got worse (p = 0.5 < ema 1) → no length term, and it is hard now
  # (0.5 ≤ mean 0.75). Prompt 1: (28.8−40)/28.8·0.1 = −0.0388889, (28.8−50)/28.8·0.1 = −0.0736111.
  out, state, _ = _step(state, [1, 0, 1, 1], [12, 3, 40, 50], [0, 0, 1, 1])
  np.testing.assert_allclose(out.rewards_b, [1.0, 0.0, 0.9611111, 0.9263889], rtol=1e-6)
  np.testing.assert_allclose(out.group_flags_b, [1, 1, 0, 0])
  # len_ref grows slowly: 0.05·12 + 0.95·9 = 9.15; 0.05·40 + 0.95·28.8 = 29.36.
  # acc_ema: 0.05·0.5 + 0.95·1 = 0.975; p = 1 > 0.5 → 0.2·1 + 0.8·0.5 = 0.6.
  np.testing.assert_allclose(state["len_ref_n"], [9.15, 29.36], rtol=1e-6)
  np.testing.assert_allclose(state["acc_ema_n"], [0.975, 0.6], rtol=1e-6)
  np.testing.assert_allclose(state["count_n"], [3, 3])


def test_unseen_prompts_and_untouched_rows():
  state = {**ceeh.init_ceeh(4), "acc_ema_n": jnp.asarray([0.8, -1, -1, -1], jnp.float32),
           "len_ref_n": jnp.asarray([10.0, 0, 0, 0], jnp.float32)}
  # mean(acc_ema) = (0.8 − 3)/4 = −0.55: no group can be hard while most prompts are unseen.
  # Prompt 2 is new: no history → reward 1 whatever its length.
  out, new_state, _ = _step(state, [1, 1], [3, 300], [2, 2])
  np.testing.assert_allclose(out.rewards_b, [1, 1])
  np.testing.assert_allclose(out.group_flags_b, [0, 0])
  np.testing.assert_allclose(new_state["len_ref_n"], [10, 0, 3, 0])
  np.testing.assert_allclose(new_state["acc_ema_n"], [0.8, -1, 1, -1])
  np.testing.assert_allclose(new_state["count_n"], [0, 0, 1, 0])


def test_all_wrong_group_keeps_len_ref_and_resets_zero_ema():
  state = {**ceeh.init_ceeh(1), "acc_ema_n": jnp.asarray([0.0]), "len_ref_n": jnp.asarray([20.0])}
  out, new_state, _ = _step(state, [0, 0], [5, 6], [0, 0])
  np.testing.assert_allclose(out.rewards_b, [0, 0])
  np.testing.assert_allclose(new_state["len_ref_n"], [20.0])   # no correct answer, no minimum
  np.testing.assert_allclose(new_state["acc_ema_n"], [0.0])     # acc_ema ≤ 0 → p (= 0)
  # All-correct group after acc 0: acc_ema ≤ 0 → reset to p = 1 (code's rule, not an EMA).
  _, new_state, _ = _step(new_state, [1, 1], [5, 6], [0, 0])
  np.testing.assert_allclose(new_state["acc_ema_n"], [1.0])


def test_floor_zero_length_and_single_sample_groups():
  state = {**ceeh.init_ceeh(3), "acc_ema_n": jnp.asarray([0.5, 0.5, 0.5]),
           "len_ref_n": jnp.asarray([10.0, 10.0, 10.0])}
  # G = 1. s = 0.5: L = 100 → 0.5·(10−100)/10 = −4.5 → floor −0.9; L = 0 (empty, correct)
  # → 0.5·(10−0)/10 = 0.5; the wrong row gets 0. mean ema 0.5: p = 1, 1, 0 → hard only row 2.
  out, new_state, _ = _step(state, [1, 1, 0], [100, 0, 7], [0, 1, 2], group_size=1,
                            length_scale=0.5)
  np.testing.assert_allclose(out.rewards_b, [0.1, 1.5, 0.0], rtol=1e-6)
  np.testing.assert_allclose(out.group_flags_b, [0, 0, 1])
  # len_ref: 100 > 10 → 0.05·100 + 0.95·10 = 14.5; 0 < 10 → 0.2·0 + 0.8·10 = 8; none for row 2.
  np.testing.assert_allclose(new_state["len_ref_n"], [14.5, 8.0, 10.0], rtol=1e-6)


def test_truncated_rows_count_as_wrong():
  state = {**ceeh.init_ceeh(1), "acc_ema_n": jnp.asarray([0.5]), "len_ref_n": jnp.asarray([4.0])}
  batch = testing.make_rollout([1, 0], [2, 8], max_len=8, prompt_index=[0, 0])
  assert bool(batch.truncated_b[1])
  out, _, _ = _ceeh(2)(batch, state)
  # Row 0: 1 + 0.1·(4−2)/4 = 1.05; the truncated row is wrong (verifier) → 0.
  np.testing.assert_allclose(out.rewards_b, [1.05, 0.0], rtol=1e-6)


def _hard_batch_and_state(entropy_bt):
  """Prompt 0 (all wrong, hard) and prompt 1 (all correct, easy); T = 2."""
  state = {**ceeh.init_ceeh(2), "acc_ema_n": jnp.asarray([0.5, 0.5])}
  batch = testing.make_rollout([0, 0, 1, 1], [2, 2, 2, 1], prompt_index=[0, 0, 1, 1],
                               features={"entropy": np.asarray(entropy_bt, np.float32)})
  return batch, state


def test_ea_bonus_and_cap_through_the_advantage():
  batch, state = _hard_batch_and_state([[1.0, 3.0], [0.0, 1.0], [2.0, 2.0], [2.0, 0.0]])
  out, _, _ = _ceeh(2, entropy_mode="ea")(batch, state)
  # hard rows 0-1: bonus = 0.4·H = [0.4, 1.2], [0, 0.4]; cap = 1/κ = 0.5; easy rows: 0.
  np.testing.assert_allclose(out.adv_bonus_bt, [[0.4, 1.2], [0, 0.4], [0, 0], [0, 0]],
                             rtol=1e-6)
  np.testing.assert_allclose(out.adv_bonus_cap_bt, [[0.5, 0.5], [0.5, 0.5], [0, 0], [0, 0]])
  adv_bt = jnp.asarray([[-1.0, -1.0], [2.0, 2.0], [1.0, 1.0], [1.0, 0.0]])
  new_adv = types.add_advantage_bonus(adv_bt, out, batch.mask_bt)
  # A + min(bonus, 0.5·|A|): −1 + min(0.4, 0.5) = −0.6, −1 + min(1.2, 0.5) = −0.5;
  # 2 + min(0, 1) = 2, 2 + min(0.4, 1) = 2.4; easy rows unchanged; padding stays 0.
  np.testing.assert_allclose(new_adv, [[-0.6, -0.5], [2.0, 2.4], [1, 1], [1, 0]], rtol=1e-6)


def test_ea_linear_schedule_and_missing_entropy():
  batch, state = _hard_batch_and_state(np.ones((4, 2)))
  out, _, _ = _ceeh(2, entropy_mode="ea", schedule="linear")(batch, state)
  # k_t = 1 − t/T, T = 2: [1, 0.5] → bonus 0.4·k_t, cap k_t/2 on hard rows.
  np.testing.assert_allclose(out.adv_bonus_bt[0], [0.4, 0.2], rtol=1e-6)
  np.testing.assert_allclose(out.adv_bonus_cap_bt[0], [0.5, 0.25], rtol=1e-6)
  with pytest.raises(ValueError, match="'entropy'"):
    _ceeh(2, entropy_mode="ea")(batch.replace(features={}), state)


def test_me_entropy_weight():
  batch, state = _hard_batch_and_state(np.ones((4, 2)))
  out, _, _ = _ceeh(2, entropy_mode="me", schedule="cosine")(batch, state)
  # k_t = ½(1 + cos(πt/2)) = [1, 0.5]; weight k_t·(1 + hard·(5 − 1)): hard rows ×5;
  # row 3 has one token (its padding gets 0).
  np.testing.assert_allclose(out.entropy_weight_bt, [[5, 2.5], [5, 2.5], [1, 0.5], [1, 0]],
                             atol=1e-6)
  assert out.adv_bonus_bt is None
  out, _, _ = _ceeh(2)(batch, state)      # mode "none": no entropy fields at all
  assert out.adv_bonus_bt is None and out.entropy_weight_bt is None
