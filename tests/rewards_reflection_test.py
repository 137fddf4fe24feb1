"""ARLCP: keyword counting on the host and the group-calibrated reward (OpenReview aRzEtK9Ite)."""
import functools

import jax
import numpy as np
import pytest

from concise_jax import data, rollout, testing
from concise_jax.rewards import REWARDS
from concise_jax.rollout import sampler
from concise_jax.train import host_features, rollout_step

STATE = ()   # stateless rewards


@functools.cache
def _jitted(group_size, overrides=()):
  kwargs = dict(overrides)
  return jax.jit(functools.partial(REWARDS.get("arlcp"), group_size=group_size, **kwargs))


def _rewards(correct, length, counts, group_size, **overrides):
  batch = testing.make_rollout(correct, length,
                               features={"reflection_count": np.asarray(counts, np.int32)})
  out, _, _ = _jitted(group_size, tuple(sorted(overrides.items())))(batch, STATE)
  return np.asarray(out.rewards_b)


def test_count_reflections():
  text = ("Wait, let me check. Hmm... but BUT we double-check; however, hold  on.\n"
          "Alternatively the check-in awaits. Oh! Another thought")
  # wait 1, check 1 ("let me check"), hmm 1, but 2, double-check 1 (its "check" is not
  # counted again), however 1, hold on 1 (any whitespace), alternatively 1 ("alternative"
  # inside it is not a whole word), check-in 0, awaits 0, oh 1, another thought 1 → 11.
  assert host_features.count_reflections(text) == 11
  assert host_features.count_reflections("") == 0


def test_arlcp_golden():
  # One group, correct = [1, 1, 1, 0], counts c = [10, 20, 90, 5], L = [10, 20, 30, 40].
  # Over the correct answers: μ_c = 40, σ_c = stdev(10, 20, 90) = sqrt(3800 / 2) = 43.589
  #   → z_c = [−.68825, −.45883, 1.14708] → σ(z_c) = [.33442, .38726, .75898]
  # μ_L = 20, σ_L = stdev(10, 20, 30) = 10 → z_L = [−1, 0, 1] → σ = [.26894, .5, .73106]
  # w1 = [.05, .05, .15] (c ≤ 40, ≤ 40, > 80), w2 = .2 − w1 = [.15, .15, .05]
  # r = 1 − w1·σ(z_c) − w2·σ(z_L):
  #   1 − .016721 − .040341 = .942938;  1 − .019363 − .075 = .905637;
  #   1 − .113847 − .036553 = .849601;  wrong → 0
  r = _rewards([1, 1, 1, 0], [10, 20, 30, 40], [10, 20, 90, 5], 4)
  np.testing.assert_allclose(r, [0.9429376, 0.9056369, 0.8496005, 0.0], rtol=1e-5)


def test_arlcp_weight_tiers_are_inclusive():
  # G = 1: each correct answer is alone → μ = itself, σ = 1 → both sigmoids = .5 →
  # r = 1 − .5·(w1 + w2) = 0.9 whatever w1; so use two answers per group to see w1.
  # Group (c, L) = (x, 10) correct and (0, 10) correct: μ_c = x/2, σ_c = x/√2 → z_c = ±1/√2;
  # lengths equal → σ_L = 0 → z_L = 0 → σ = .5.
  # r_first = 1 − w1·σ(.70711) − (.2 − w1)·.5 with σ(.70711) = .66976.
  s = 0.66976155
  for count, w1 in [(40, 0.05), (41, 0.10), (80, 0.10), (81, 0.15)]:
    r = _rewards([1, 1], [10, 10], [count, 0], 2)
    np.testing.assert_allclose(r[0], 1 - w1 * s - (0.2 - w1) * 0.5, rtol=1e-5)


def test_arlcp_single_correct_all_correct_equal_and_all_wrong():
  # group 0: one correct → σ = 1 (ARLCP default), μ = itself → z = 0 → r = 1 − .2·.5 = .9
  # group 1: all correct, equal c and L → σ = 0 → z = 0/(0 + eps) = 0 → .9 each
  # group 2: all wrong → 0
  r = _rewards([1, 0, 0,  1, 1, 1,  0, 0, 0], [7, 3, 9,  5, 5, 5,  1, 2, 3],
               [3, 0, 8,  2, 2, 2,  9, 9, 9], 3)
  np.testing.assert_allclose(r, [0.9, 0, 0, 0.9, 0.9, 0.9, 0, 0, 0], rtol=1e-6)


def test_arlcp_single_sample_groups_and_zero_length():
  r = _rewards([1, 0, 1], [0, 0, 64], [0, 0, 200], 1)
  np.testing.assert_allclose(r, [0.9, 0.0, 0.9], rtol=1e-6)


def test_arlcp_population_std_differs_from_stdev():
  # ARLCP's code uses statistics.stdev (ddof 1); ddof 0 changes z and hence r.
  args = ([1, 1, 1, 0], [10, 20, 30, 40], [10, 20, 90, 5], 4)
  assert not np.allclose(_rewards(*args), _rewards(*args, std_ddof=0))


def test_arlcp_requires_reflection_counts():
  batch = testing.make_rollout([1, 0], [3, 4])
  with pytest.raises(ValueError, match="reflection_count"):
    _jitted(2)(batch, STATE)


def test_rollout_batch_fills_reflection_counts_only_when_declared(monkeypatch):
  # The host side, without a model: stub prompt encoding, sampling and decoding.
  texts = ["Wait, 4. Hmm, but check: 4", "4", "hold on... Alternatively 5", ""]
  out = rollout.sampler.SampleOutput(
      tokens_bt=np.ones((4, 3), np.int32), logp_bt=np.zeros((4, 3), np.float32),
      mask_bt=np.ones((4, 3), np.int32), length_b=np.full(4, 3, np.int32),
      finished_b=np.ones(4, bool), truncated_b=np.zeros(4, bool))
  monkeypatch.setattr(rollout_step, "encode_prompts",
                      lambda tok, ex, fmt, budget_p=None: (np.ones((2, 2), np.int32),
                                                           np.ones((2, 2)), 0))
  monkeypatch.setattr(sampler, "sample", lambda *args, **kwargs: out)
  monkeypatch.setattr(rollout, "completions_to_text", lambda tok, o: texts)
  examples = [data.Example(id=f"x/{i}", prompt="2+2?", answer="4", difficulty=1,
                           split="train", source="x") for i in range(2)]
  check = lambda c, r, k: [False] * len(c)
  run = lambda features: rollout_step.rollout_batch(
      None, None, None, examples, [0, 1], None, sp=None, group_size=2,
      fmt=rollout_step.PromptFormat(), check=check, features=features)[0]
  assert run(None).features == {}          # no selected component declared the need
  features = host_features.HostFeatures(wanted={"reflection_count": {}}, tokenizer=None,
                                        check=check, group_size=2)
  counts = run(features).features["reflection_count"]
  # wait + hmm + but + check = 4; none; hold on + alternatively = 2; empty text = 0
  np.testing.assert_array_equal(counts, [4, 0, 2, 0])
  assert counts.dtype == np.int32
