"""Efficient Reasoning (Arora & Zanette, arXiv:2502.04463): hand-computed rewards, the group
conventions, and the method's config added the component way."""
import functools

import jax
import numpy as np

from concise_jax import components, testing
from concise_jax.rewards import REWARDS
from configs import efficient_reasoning


@functools.cache
def _reward(group_size, **options):
  return jax.jit(functools.partial(REWARDS.get("efficient_reasoning"), group_size=group_size,
                                   **options))


def _rewards(correct, length, group_size=4, **options):
  batch = testing.make_rollout(correct, length, group_size=group_size)
  out, state, metrics = _reward(group_size, **options)(batch, ())
  assert state == ()                                   # stateless
  return np.asarray(out.rewards_b), metrics


def test_golden_four_groups():
  r, metrics = _rewards([1, 1, 1, 0,  0, 1, 0, 0,  0, 0, 0, 0,  1, 1, 1, 1],
                        [10, 20, 30, 40,  5, 50, 7, 9,  3, 4, 5, 6,  8, 8, 8, 8])
  # Group 0: correct lengths 10, 20, 30 → μ 20, σ (ddof 0) = sqrt(200/3) = 8.16497 →
  #   z = −1.22474, 0, 1.22474 → σ(z) = .227103, .5, .772897 → r = 1 − 0.1·σ(z);
  #   the wrong answer gets 0 whatever its length.
  # Group 1: one correct answer → σ_c = 1, z = 0 → 0.95. Group 2: all wrong → 0.
  # Group 3: equal lengths → σ_c = 0, z = 0 → 0.95 each.
  np.testing.assert_allclose(r, [0.977290, 0.95, 0.922710, 0,  0, 0.95, 0, 0,  0, 0, 0, 0,
                                 0.95, 0.95, 0.95, 0.95], atol=1e-6)
  # Mean discount over the 8 correct answers: (.0227103 + .05 + .0772897 + 5 · .05) / 8.
  np.testing.assert_allclose(metrics["efficient_reasoning/discount"], 0.05, atol=1e-6)


def test_alpha_and_sample_std():
  # ddof 1: σ_c = 10 → z = −1, 0, 1 → σ(z) = .268941, .5, .731059.
  r, _ = _rewards([1, 1, 1, 0], [10, 20, 30, 40], std_ddof=1)
  np.testing.assert_allclose(r, [0.973106, 0.95, 0.926894, 0], atol=1e-6)
  r, _ = _rewards([1, 1, 1, 0], [10, 20, 30, 40], alpha=0.4, std_ddof=1)
  np.testing.assert_allclose(r, [0.892424, 0.8, 0.707576, 0], atol=1e-6)
  r, _ = _rewards([1, 1, 1, 0], [10, 20, 30, 40], alpha=0.0)
  np.testing.assert_allclose(r, [1, 1, 1, 0])          # α = 0: plain correctness


def test_component_declares_no_state_and_no_host_need():
  component = REWARDS.component("efficient_reasoning")
  assert not component.stateful and component.needs == ()
  assert set(component.options) == {"alpha", "std_ddof", "eps"}
  config = efficient_reasoning.get_config("model=tiny,runlocal")
  assert config.reward.name == "efficient_reasoning" and config.advantage.name == "rloo"
  assert components.needs(config) == {}
  assert components.init_states(config, 4).reward == ()
