"""Property-based tests (hypothesis): the answer extractor on arbitrary strings, and every
registered reward and policy loss on random batches (finite, static shapes, group invariance).

Shapes are fixed so each jitted function compiles once; hypothesis varies the values (seeds,
correctness, lengths including 0 and the cap, log-ratios up to ±60 beyond every clamp).
"""
import functools
from fractions import Fraction

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from concise_jax import components, testing
from concise_jax.losses import POLICY_LOSSES
from concise_jax.rewards import REWARDS
from concise_jax.verify import extract, numbers, verify
from configs import common

FAST = settings(max_examples=10, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
TEXT = settings(max_examples=100, deadline=None, derandomize=True)

# ----------------------------------------------------------------------------- extractor

_ANSWERISH = st.text(alphabet=st.sampled_from(list("0123456789 .,-+/=$%{}\\()#:abxAnswer\n")),
                     max_size=80)


@pytest.mark.integration  # hypothesis examples through the sympy verifier: ~17 s on 2 cores
@TEXT
@given(st.one_of(st.text(max_size=300), _ANSWERISH))
def test_extractor_never_raises_and_stays_bounded(text):
  segment = extract.extract_answer(text)
  assert segment is None or (isinstance(segment, str) and len(segment) <= extract.MAX_ANSWER_CHARS)
  value = extract.extract_number(text)
  assert value is None or isinstance(value, Fraction)
  assert isinstance(verify.is_correct(text, "7", "numeric"), bool)


_NUMBER = st.one_of(st.integers(-10**12, 10**12),
                    st.fractions(max_denominator=1000).filter(lambda f: abs(f) < 10**9))
_PROSE = st.text(alphabet=st.sampled_from(list("abcdefgh ijk.,;!?\n")), max_size=120)


@TEXT
@given(_NUMBER, _PROSE, _PROSE)
def test_boxed_reference_is_found_after_any_prose(value, before, after):
  reference = numbers.format_number(value)
  completion = f"{before} so the result is \\boxed{{{reference}}}. {after}"
  assert extract.extract_number(completion) == Fraction(value)
  assert verify.is_correct(completion, reference, "numeric")
  assert verify.reference_problem(reference, "numeric") is None


@TEXT
@given(_NUMBER)
def test_format_number_round_trips(value):
  assert numbers.parse_number(numbers.format_number(value)) == Fraction(value)


# ----------------------------------------------------------------------------- rewards

G_REWARD, P_REWARD, MAX_LEN = 4, 3, 32


@functools.cache
def _reward(name):
  return jax.jit(functools.partial(REWARDS.get(name), group_size=G_REWARD))


_CORRECT = st.lists(st.integers(0, 1), min_size=G_REWARD * P_REWARD, max_size=G_REWARD * P_REWARD)
_LENGTH = st.lists(st.sampled_from([0, 1, 2, 7, 16, 31, MAX_LEN]) | st.integers(0, MAX_LEN),
                   min_size=G_REWARD * P_REWARD, max_size=G_REWARD * P_REWARD)


def _reward_batch(correct, length, seed):
  num = G_REWARD * P_REWARD
  rng = np.random.default_rng(seed)
  batch = testing.make_rollout(
      np.asarray(correct), np.asarray(length), max_len=MAX_LEN,
      format_ok=rng.integers(0, 2, num), prompt_index=np.repeat([4, 0, 2], G_REWARD),
      old_logp=-rng.uniform(0, 3, (num, MAX_LEN)).astype(np.float32))
  return testing.with_optional_fields(batch, seed=seed)


@pytest.mark.parametrize("name", [  # one reward by default; every reward in integration
    pytest.param(n, marks=() if i == 0 else pytest.mark.integration)
    for i, n in enumerate(REWARDS.names())])
@FAST
@given(correct=_CORRECT, length=_LENGTH, seed=st.integers(0, 2**16))
def test_reward_is_finite_shaped_and_group_permutation_invariant(name, correct, length, seed):
  batch = _reward_batch(correct, length, seed)
  state = components.init_state(REWARDS.component(name), 8, pass_rate_window=8)
  out, new_state, metrics = _reward(name)(batch, state)
  num = G_REWARD * P_REWARD
  chex.assert_shape(out.rewards_b, (num,))
  chex.assert_tree_all_finite((out, new_state, metrics))
  perm = [2, 0, 1]
  out_p, _, _ = _reward(name)(testing.permute_groups(batch, perm, G_REWARD), state)
  chex.assert_trees_all_close(out_p, testing.permute_groups(out, perm, G_REWARD),
                              rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- policy losses

G_LOSS, P_LOSS, T_LOSS = 2, 3, 6


@functools.cache
def _loss(name):
  return jax.jit(functools.partial(POLICY_LOSSES.get(name), group_size=G_LOSS,
                                   **common.POLICY_LOSS_DEFAULTS[name]))


@pytest.mark.integration
@pytest.mark.parametrize("name", POLICY_LOSSES.names())
@FAST
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.0, 0.1, 1.0, 5.0, 60.0]),
       adv_scale=st.sampled_from([0.0, 1.0, 100.0]))
def test_policy_loss_is_finite_shaped_and_group_permutation_equivariant(name, seed, scale,
                                                                        adv_scale):
  rng = np.random.default_rng(seed)
  num = G_LOSS * P_LOSS
  batch = testing.with_optional_fields(testing.make_rollout(
      rng.integers(0, 2, num), rng.integers(0, T_LOSS + 1, num), max_len=T_LOSS,
      group_size=G_LOSS, old_logp=-rng.uniform(0.1, 5.0, (num, T_LOSS)).astype(np.float32)),
      seed=seed)
  logp_bt = batch.old_logp_bt + jnp.asarray(rng.normal(scale=scale, size=(num, T_LOSS)),
                                            jnp.float32)
  adv_bt = jnp.asarray(rng.normal(scale=adv_scale, size=(num, 1)), jnp.float32) * batch.mask_bt
  fn = _loss(name)
  loss_bt, aux = fn(logp_bt, adv_bt, batch.mask_bt, batch)
  chex.assert_shape(loss_bt, (num, T_LOSS))
  chex.assert_tree_all_finite((loss_bt, aux))
  perm = [1, 2, 0]
  perm_loss_bt, _ = fn(*testing.permute_groups((logp_bt, adv_bt, batch.mask_bt, batch), perm,
                                               G_LOSS))
  np.testing.assert_allclose(perm_loss_bt, testing.permute_groups(loss_bt, perm, G_LOSS),
                             rtol=1e-5, atol=1e-6)
