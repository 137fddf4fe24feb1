"""HAPO rewards and their per-prompt history, over several steps (arXiv:2505.11225)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import testing
from concise_jax.rewards import REWARDS, history

COS_PI_4, COS_PI_6 = 0.70710678, 0.86602540


@functools.cache
def _jitted(name, group_size, overrides=()):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get(name), group_size=group_size, **kwargs))


def _step(name, state, correct, length, prompts, group_size=2, **overrides):
  batch = testing.make_rollout(correct, length, prompt_index=prompts)
  out, new_state, metrics = _jitted(name, group_size, tuple(sorted(overrides.items())))(
      batch, state)
  return np.asarray(out.rewards_b), new_state, metrics


def test_hapo_cosine_min_history_over_three_steps():
  state = history.init_history(4)
  # step 1: every prompt is new → r_len = 0 → r = I(correct). History: prompt 0 gets
  # min(10, 20) = 10 from its two correct answers; prompt 1 (all wrong) stays unseen.
  r, state, m = _step("hapo_cosine", state, [1, 1, 0, 0], [10, 20, 5, 7], [0, 0, 1, 1])
  np.testing.assert_allclose(r, [1, 1, 0, 0])
  np.testing.assert_allclose(m["hapo_cosine/seen_frac"], 0.0)
  np.testing.assert_allclose(state["len_n"], [10, 0, 0, 0])
  np.testing.assert_allclose(state["count_n"], [2, 0, 0, 0])
  # step 2, prompt 0 (h = 10): correct L = 5 → cos(π/4) → 1 + .7071;
  # wrong L = 30 ≥ 2h → c = −1 → min(0, −1) → 0 − 1. Prompt 1 still new → [1, 1].
  r, state, m = _step("hapo_cosine", state, [1, 0, 1, 1], [5, 30, 8, 12], [0, 0, 1, 1])
  np.testing.assert_allclose(r, [1 + COS_PI_4, -1, 1, 1], rtol=1e-6)
  np.testing.assert_allclose(m["hapo_cosine/seen_frac"], 0.5)
  np.testing.assert_allclose(state["len_n"], [5, 8, 0, 0])     # min(10, 5); min(8, 12)
  np.testing.assert_allclose(state["count_n"], [3, 2, 0, 0])
  # step 3, prompt 1 (h = 8): L = 4 → cos(π/4); L = 14 → cos(1.75·π/2) = −.9239 → floor −.7
  # → 0.3. Prompt 2 is new: [0, 1].
  r, state, _ = _step("hapo_cosine", state, [1, 1, 0, 1], [4, 14, 3, 9], [1, 1, 2, 2])
  np.testing.assert_allclose(r, [1 + COS_PI_4, 0.3, 0, 1], rtol=1e-6)
  np.testing.assert_allclose(state["len_n"], [5, 4, 9, 0])
  np.testing.assert_allclose(state["count_n"], [3, 4, 1, 0])


def test_hapo_cosine_mean_history():
  state = history.init_history(2)
  _, state, _ = _step("hapo_cosine", state, [1, 1, 0, 0], [10, 20, 5, 7], [0, 0, 1, 1],
                      mode="mean")
  np.testing.assert_allclose(state["len_n"], [15, 0])           # (10 + 20) / 2
  # h = 15: L = 5 → cos(π/6) → 1.8660; wrong L = 30 = 2h (not < 2h) → −1.
  r, state, _ = _step("hapo_cosine", state, [1, 0, 1, 1], [5, 30, 8, 12], [0, 0, 1, 1],
                      mode="mean")
  np.testing.assert_allclose(r, [1 + COS_PI_6, -1, 1, 1], rtol=1e-6)
  # prompt 0: (15·2 + 5) / 3 = 35/3; prompt 1: (8 + 12) / 2 = 10.
  np.testing.assert_allclose(state["len_n"], [35 / 3, 10], rtol=1e-6)
  np.testing.assert_allclose(state["count_n"], [3, 2])


def _seeded(h, count=1.0, num_prompts=2):
  state = history.init_history(num_prompts)
  return {"len_n": state["len_n"].at[0].set(h), "count_n": state["count_n"].at[0].set(count)}


def test_hapo_linear_golden_and_duplicate_prompt_in_batch():
  # Both groups are prompt 0 (h = 10, τ = .1 → neutral band [10, 11)).
  # correct: L=5 → 1 − .5 = .5; L=10 → 0; L=15 → −(15 − 11)/10 = −.4; L=25 → −1.4 → −.7
  # wrong:   L=5 → 0; L=15 → −.4; L=30 → −1.9 → −1; L=11 → −0/10 = 0
  r, state, _ = _step("hapo_linear", _seeded(10.0), [1, 1, 1, 1, 0, 0, 0, 0],
                      [5, 10, 15, 25, 5, 15, 30, 11], [0] * 8, group_size=4)
  np.testing.assert_allclose(r, [1.5, 1, 0.6, 0.3, 0, -0.4, -1, 0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(state["len_n"], [5, 0])           # min(10, 5)
  np.testing.assert_allclose(state["count_n"], [5, 0])         # 1 + 4 correct answers


def test_hapo_length_weight_scales_only_the_length_term():
  # h = 10, cosine: L = 5 → +.7071 · 0.5; wrong L = 30 → −1 · 0.5.
  r, _, _ = _step("hapo_cosine", _seeded(10.0), [1, 0], [5, 30], [0, 0], length_weight=0.5)
  np.testing.assert_allclose(r, [1 + 0.5 * COS_PI_4, -0.5], rtol=1e-6)


@pytest.mark.parametrize("name", ["hapo_cosine", "hapo_linear"])
def test_zero_length_response_and_zero_length_history(name):
  # h = 0 on record (an empty correct answer) is floored to 1 token: no 0/0.
  # cosine: L = 0 → cos 0 = 1 → 2; L = 1 → cos(π/2) ≈ 0 → 1; L = 3 ≥ 2 → −1 → floor −.7 → .3
  # linear (h = 1, band [1, 1.1)): L = 0 → 1 − 0 = 1 → 2; L = 1 → band → 1;
  #   L = 3 → −(3 − 1.1)/1 = −1.9 → −.7 → .3
  r, state, _ = _step(name, _seeded(0.0), [1, 1, 1], [0, 1, 3], [0, 0, 0], group_size=1)
  np.testing.assert_allclose(r, [2, 1, 0.3], atol=1e-6)
  np.testing.assert_allclose(state["len_n"], [0, 0])           # min(0, 0) stays 0
  assert np.all(np.isfinite(r))


@pytest.mark.parametrize("name", ["hapo_cosine", "hapo_linear"])
def test_all_wrong_group_leaves_history_and_new_prompts_get_plain_correctness(name):
  state = _seeded(10.0)
  r, new_state, _ = _step(name, state, [0, 0, 1, 0], [3, 40, 7, 9], [0, 0, 1, 1])
  # prompt 0 (h = 10) all wrong: no update; short wrong L = 3 is not punished (0), L = 40 is.
  assert r[0] == 0 and r[1] < 0
  np.testing.assert_allclose(r[2:], [1, 0])                       # prompt 1 is new
  np.testing.assert_allclose(new_state["len_n"], [10, 7])
  np.testing.assert_allclose(new_state["count_n"], [1, 1])


def test_unknown_mode_lists_valid_modes():
  with pytest.raises(KeyError, match="mean, min"):
    _step("hapo_cosine", _seeded(10.0), [1, 0], [5, 30], [0, 0], mode="median")


def test_history_is_in_the_state_not_the_batch_slot():
  # The same prompt in slot 0 or slot 1 of the batch gets the same reward and update.
  state = _seeded(10.0, num_prompts=3)
  r_a, s_a, _ = _step("hapo_cosine", state, [1, 0, 1, 1], [5, 30, 4, 6], [0, 0, 2, 2])
  r_b, s_b, _ = _step("hapo_cosine", state, [1, 1, 1, 0], [4, 6, 5, 30], [2, 2, 0, 0])
  np.testing.assert_allclose(r_a, np.concatenate([r_b[2:], r_b[:2]]), rtol=1e-6)
  np.testing.assert_allclose(s_a["len_n"], s_b["len_n"])
  np.testing.assert_allclose(jnp.asarray(s_a["len_n"]), [5, 0, 4])
