"""The jitted sampler: determinism, greedy = argmax of the full forward, stops, budgets, top-k/p."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import models, rollout
from concise_jax.models import tiny
from concise_jax.rollout import sampler as sampler_lib

CFG = tiny.tiny_config()


@pytest.fixture(scope="module")
def params():
  return models.init_params(CFG, jax.random.key(0))


def _prompts():
  tokens, mask = rollout.left_pad([[5, 6, 7], [8, 9, 10, 11, 12]], pad_id=0, bucket=8)
  return jnp.asarray(tokens), jnp.asarray(mask)


def test_left_pad_buckets_and_masks():
  tokens, mask = rollout.left_pad([[1, 2], [3, 4, 5]], pad_id=0, bucket=4)
  np.testing.assert_array_equal(tokens, [[0, 0, 1, 2], [0, 3, 4, 5]])
  np.testing.assert_array_equal(mask, [[0, 0, 1, 1], [0, 1, 1, 1]])


@pytest.mark.integration  # compiles its own model programs: ~22 s on 2 cores
def test_same_key_same_tokens_different_key_different(params):
  tokens, mask = _prompts()
  sp = rollout.SamplingParams(max_new_tokens=12, temperature=1.0)
  a = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp, num_samples=2)
  b = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp, num_samples=2)
  c = rollout.sample(CFG, params, tokens, mask, jax.random.key(1), sp, num_samples=2)
  np.testing.assert_array_equal(a.tokens_bt, b.tokens_bt)
  assert (np.asarray(a.tokens_bt) != np.asarray(c.tokens_bt)).any()
  assert a.tokens_bt.shape == (4, 12)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_greedy_matches_argmax_of_full_forward(params):
  tokens, mask = _prompts()
  sp = rollout.SamplingParams(max_new_tokens=6, temperature=0.0)
  out = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp)
  seq, seq_mask = tokens, mask
  for t in range(6):
    logits, _ = models.forward(CFG, params, seq, mask_bs=seq_mask)
    nxt = jnp.argmax(logits[:, -1], axis=-1)
    np.testing.assert_array_equal(out.tokens_bt[:, t], nxt)
    want_logp = jax.nn.log_softmax(logits[:, -1])[jnp.arange(2), nxt]
    np.testing.assert_allclose(out.logp_bt[:, t], want_logp, atol=1e-5)
    seq = jnp.concatenate([seq, nxt[:, None]], axis=1)
    seq_mask = jnp.concatenate([seq_mask, jnp.ones_like(nxt[:, None])], axis=1)


@pytest.mark.integration
def test_group_samples_share_prefill_and_match_repeated_prompts(params):
  """G samples of a prompt equal sampling the prompt repeated G times (same key)."""
  tokens, mask = _prompts()
  sp = rollout.SamplingParams(max_new_tokens=8, temperature=1.0)
  grouped = rollout.sample(CFG, params, tokens, mask, jax.random.key(3), sp, num_samples=3)
  rep = rollout.sample(CFG, params, jnp.repeat(tokens, 3, 0), jnp.repeat(mask, 3, 0),
                       jax.random.key(3), sp, num_samples=1)
  np.testing.assert_array_equal(grouped.tokens_bt, rep.tokens_bt)
  np.testing.assert_allclose(grouped.logp_bt, rep.logp_bt, atol=1e-5)


def test_eos_ends_row_and_is_kept_in_mask(params):
  tokens, mask = _prompts()
  greedy = rollout.SamplingParams(max_new_tokens=6, temperature=0.0)
  ref = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), greedy)
  eos = int(ref.tokens_bt[0, 2])  # make row 0's third greedy token an EOS id
  sp = rollout.SamplingParams(max_new_tokens=6, temperature=0.0, eos_ids=(eos,), pad_id=0)
  out = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp)
  first = int(np.argmax(np.asarray(ref.tokens_bt[0]) == eos))
  assert int(out.length_b[0]) == first + 1
  assert bool(out.finished_b[0]) and not bool(out.truncated_b[0])
  np.testing.assert_array_equal(out.mask_bt[0], np.arange(6) < first + 1)
  assert (np.asarray(out.tokens_bt[0, first + 1:]) == 0).all()
  assert (np.asarray(out.logp_bt[0, first + 1:]) == 0).all()


@pytest.mark.integration
def test_stop_sequence_ends_row(params):
  tokens, mask = _prompts()
  greedy = rollout.SamplingParams(max_new_tokens=8, temperature=0.0)
  ref = np.asarray(rollout.sample(CFG, params, tokens, mask, jax.random.key(0), greedy).tokens_bt)
  stop = (int(ref[1, 3]), int(ref[1, 4]))
  sp = rollout.SamplingParams(max_new_tokens=8, temperature=0.0, stop_sequences=(stop,))
  out = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp)
  windows = [tuple(ref[1, i:i + 2]) for i in range(7)]
  assert int(out.length_b[1]) == windows.index(stop) + 2
  assert bool(out.finished_b[1])


@pytest.mark.integration
def test_per_row_budget_truncates(params):
  tokens, mask = _prompts()
  sp = rollout.SamplingParams(max_new_tokens=10, temperature=1.0)
  out = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp, num_samples=2,
                       budget_b=jnp.array([3, 10, 0, 7]))
  np.testing.assert_array_equal(out.length_b, [3, 10, 0, 7])
  np.testing.assert_array_equal(out.truncated_b, [True, True, True, True])
  np.testing.assert_array_equal(out.mask_bt.sum(1), [3, 10, 0, 7])


def test_early_exit_when_all_rows_finish(params):
  """Every token is an EOS id, so the loop stops after one step (buffer stays padded)."""
  tokens, mask = _prompts()
  sp = rollout.SamplingParams(max_new_tokens=16, temperature=1.0,
                              eos_ids=tuple(range(CFG.vocab_size)), pad_id=0)
  out = rollout.sample(CFG, params, tokens, mask, jax.random.key(0), sp)
  np.testing.assert_array_equal(out.length_b, [1, 1])
  assert (np.asarray(out.tokens_bt[:, 1:]) == 0).all()


def _frequencies(logits_v, sp, n=40_000):
  keys = jax.random.split(jax.random.key(0), n)
  choose = jax.jit(jax.vmap(lambda k: sampler_lib.choose_tokens(logits_v[None], k, sp)[0][0]))
  return np.bincount(np.asarray(choose(keys)), minlength=logits_v.shape[0]) / n


PROBS = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
LOGITS = jnp.log(jnp.asarray(PROBS, jnp.float32))


def test_temperature_sampling_frequencies():
  freq = _frequencies(LOGITS, rollout.SamplingParams(temperature=1.0))
  np.testing.assert_allclose(freq, PROBS, atol=0.01)
  hot = PROBS ** 2 / (PROBS ** 2).sum()  # temperature 0.5 squares the probabilities
  np.testing.assert_allclose(_frequencies(LOGITS, rollout.SamplingParams(temperature=0.5)), hot,
                             atol=0.01)


def test_top_k_frequencies():
  freq = _frequencies(LOGITS, rollout.SamplingParams(temperature=1.0, top_k=3))
  np.testing.assert_allclose(freq, [0.5, 0.3125, 0.1875, 0, 0, 0], atol=0.01)  # 0.4/0.8, ...


@pytest.mark.parametrize("top_k", [0, 5])
def test_top_p_frequencies(top_k):
  # Mass before each token: 0, .4, .65, .8 -> with top_p = 0.7 the first three survive.
  sp = rollout.SamplingParams(temperature=1.0, top_p=0.7, top_k=top_k)
  np.testing.assert_allclose(_frequencies(LOGITS, sp), [0.5, 0.3125, 0.1875, 0, 0, 0], atol=0.01)


def test_inverse_cdf_sampler_across_blocks():
  """Ids in different 256-wide CDF blocks, incl. the last partial block, at their frequencies."""
  v = 700
  probs = np.zeros(v)
  probs[[3, 255, 256, 511, 699]] = [0.1, 0.2, 0.3, 0.25, 0.15]
  logp = jnp.log(jnp.asarray(probs, jnp.float32))[None]
  keys = jax.random.split(jax.random.key(1), 40_000)
  draws = jax.jit(jax.vmap(lambda k: sampler_lib.sample_categorical(k, logp)[0]))(keys)
  np.testing.assert_allclose(np.bincount(np.asarray(draws), minlength=v) / 40_000, probs,
                             atol=0.01)


@pytest.mark.integration
def test_text_generation_round_trip_with_char_tokenizer(params):
  tok = tiny.CharTokenizer()
  sp = rollout.SamplingParams(max_new_tokens=5, temperature=0.0, eos_ids=tok.eos_ids)
  texts, out = rollout.generate(CFG, params, tok, ["1+1=", "2+2="], sp, jax.random.key(0))
  assert len(texts) == 2
  for text, row, n in zip(texts, np.asarray(out.tokens_bt), np.asarray(out.length_b)):
    assert text == tok.decode(row[:n])
