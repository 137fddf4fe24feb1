"""Windowed resumable decoding: T/W windows equal one `sampler.sample` call, rows admitted
mid-way decode as if alone, re-prefill reproduces the kept cache, sharded equals one device."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import distributed, models, rollout, sharding
from concise_jax.models import tiny
from concise_jax.rollout import windowed

CFG = tiny.tiny_config()
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12], [3], [4, 4]]


@pytest.fixture(scope="module")
def params():
  return models.init_params(CFG, jax.random.key(0))


def _windows(params, sp, tokens, mask, group_size, window, key, layout=None, budget_p=None):
  p, s = tokens.shape
  state = windowed.init_state(CFG, p * group_size, s, sp)
  state = windowed.admit(CFG, params, state, tokens, mask, jnp.arange(p, dtype=jnp.int32), sp,
                         group_size=group_size, budget_p=budget_p, layout=layout)
  for _ in range(-(-sp.max_new_tokens // window)):
    state = windowed.advance(CFG, params, state, key, sp, window=window, layout=layout)
  return windowed.outputs(state, sp)


def _assert_same(got, want):
  np.testing.assert_array_equal(got.tokens_bt, want.tokens_bt)
  np.testing.assert_array_equal(got.length_b, want.length_b)
  np.testing.assert_array_equal(got.finished_b, want.finished_b)
  np.testing.assert_allclose(got.logp_bt, want.logp_bt, atol=1e-5)


@pytest.mark.integration  # compiles its own model programs: ~8 s on 2 cores
@pytest.mark.parametrize("temperature,stops", [(0.0, ()), (1.0, ((7, 7),))])
def test_windows_equal_one_sampler_call(params, temperature, stops):
  """Greedy and sampled (the same key folds the same global step), with EOS, a stop sequence
  and per-prompt budgets: 16 tokens in windows of 5 (the last window partial)."""
  tokens, mask = map(jnp.asarray, rollout.left_pad(PROMPTS, pad_id=0, bucket=8))
  sp = rollout.SamplingParams(max_new_tokens=16, temperature=temperature, eos_ids=(2,),
                              stop_sequences=stops)
  budget_p = jnp.asarray([16, 9, 3, 16], jnp.int32)
  key = jax.random.key(3)
  want = rollout.sample(CFG, params, tokens, mask, key, sp, num_samples=2,
                        budget_b=jnp.repeat(budget_p, 2))
  got = _windows(params, sp, tokens, mask, 2, 5, key, budget_p=budget_p)
  _assert_same(got, want)
  assert int(np.asarray(want.length_b).max()) > 5       # more than one window was needed


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_row_admitted_mid_way_decodes_as_if_alone(params):
  """Group 1 is admitted after group 0 has decoded two windows; each equals its own sampler
  call (greedy)."""
  tokens, mask = map(jnp.asarray, rollout.left_pad(PROMPTS[:2], pad_id=0, bucket=8))
  sp = rollout.SamplingParams(max_new_tokens=12, temperature=0.0)
  key = jax.random.key(0)
  state = windowed.init_state(CFG, 4, 8, sp)
  admit = lambda st, i, g: windowed.admit(CFG, params, st, tokens[i:i + 1], mask[i:i + 1],
                                          jnp.asarray([g], jnp.int32), sp, group_size=2)
  state = admit(state, 0, 0)
  for _ in range(2):
    state = windowed.advance(CFG, params, state, key, sp, window=4)
  assert np.asarray(state.length_b).tolist() == [8, 8, 0, 0]
  state = admit(state, 1, 1)
  for _ in range(3):
    state = windowed.advance(CFG, params, state, key, sp, window=4)
  got = windowed.outputs(state, sp)
  for i in range(2):
    want = rollout.sample(CFG, params, tokens[i:i + 1], mask[i:i + 1], key, sp, num_samples=2)
    rows = slice(2 * i, 2 * i + 2)
    np.testing.assert_array_equal(got.tokens_bt[rows], want.tokens_bt)
    np.testing.assert_allclose(got.logp_bt[rows], want.logp_bt, atol=1e-5)


@pytest.mark.integration
def test_reprefill_with_the_same_params_continues_identically(params):
  """Rebuilding the cache from prompt + tokens so far, then decoding on, gives the tokens the
  kept cache gives: the exact path the scheduler takes after a policy update."""
  tokens, mask = map(jnp.asarray, rollout.left_pad(PROMPTS, pad_id=0, bucket=8))
  sp = rollout.SamplingParams(max_new_tokens=12, temperature=0.0)
  key = jax.random.key(1)
  want = _windows(params, sp, tokens, mask, 1, 4, key)
  state = windowed.init_state(CFG, 4, 8, sp)
  state = windowed.admit(CFG, params, state, tokens, mask, jnp.arange(4, dtype=jnp.int32), sp,
                         group_size=1)
  for _ in range(3):
    state = windowed.advance(CFG, params, state, key, sp, window=4)
    state = windowed.reprefill(CFG, params, state)
  got = windowed.outputs(state, sp)
  np.testing.assert_array_equal(got.tokens_bt, want.tokens_bt)
  np.testing.assert_allclose(got.logp_bt, want.logp_bt, atol=1e-4)


@pytest.mark.integration
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sharded_windows_equal_one_device(params, temperature):
  """Rows over data x fsdp of a (2, 2, 2) mesh: the same tokens and log-probs as one device."""
  tokens, mask = map(jnp.asarray, rollout.left_pad(PROMPTS, pad_id=0, bucket=8))
  sp = rollout.SamplingParams(max_new_tokens=10, temperature=temperature, eos_ids=(2,))
  key = jax.random.key(3)
  single = _windows(params, sp, tokens, mask, 4, 4, key)
  layout = sharding.Layout.of(sharding.make_mesh((2, 2, 2)), sharding.DEFAULT_RULES)
  placed = distributed.put(params, sharding.tree_shardings(
      layout.mesh, models.param_axes(CFG), layout.rules, params))
  sharded = _windows(placed, sp, tokens, mask, 4, 4, key, layout=layout)
  _assert_same(sharded, single)


def test_verify_writes_the_block_before_or_after_attention_identically(params):
  """The order of the cache write (XLA:CPU copies fewer buffers writing first at large batch)
  changes nothing: the block's own slots are not valid until `commit`. Ragged rows: a first
  block kept 3, 1 and 2 tokens per row."""
  from concise_jax.models import verification as V  # pylint: disable=import-outside-toplevel
  tokens, mask = map(jnp.asarray, rollout.left_pad(PROMPTS[:3], pad_id=0, bucket=8))
  _, _, cache = V.prefill_with_features(CFG, params, tokens, mask, max_len=20)
  _, _, cache = V.verify(CFG, params, jnp.asarray([[5, 6, 7]] * 3), cache)
  cache = V.commit(cache, 3, jnp.asarray([3, 1, 2], jnp.int32))
  block = jnp.asarray([[9, 10, 11], [12, 13, 14], [15, 16, 17]])
  first = V.verify(CFG, params, block, cache, write_first=True)
  after = V.verify(CFG, params, block, cache, write_first=False)
  for got, want in zip(jax.tree.leaves(first), jax.tree.leaves(after)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  written = np.asarray(first[2].k_bksh[0])[np.arange(3), :, np.asarray(cache.end) + 1]
  assert np.abs(written).sum() > 0       # the block's keys are in the cache at each row's end
