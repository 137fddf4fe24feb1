"""Speculative sampler: greedy equals plain greedy token for token; sampling keeps the target's
distribution; the cache after rejections equals a fresh prefill of the accepted text."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from concise_jax.draft import EagleDrafter, ModelDrafter, init_head, testing
from concise_jax.models import tiny, transformer
from concise_jax.models import verification as V
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP
from concise_jax.rollout.generate import left_pad

CFG, TOK = tiny.tiny_config(), tiny.CharTokenizer()
TEXTS = ["12+3=", "hello world abc", "x", "what is 2", "9*9", "ab", "the cat", "1"]


@pytest.fixture(scope="module")
def target():
  return testing.sharp_tiny(0)


def _drafter(kind, params):
  if kind == "model":   # a noisy copy agrees ~half the time: ragged acceptance
    return ModelDrafter(CFG), {"params": testing.noisy_copy(params, 1, 0.1)}
  return EagleDrafter(CFG), {"head": init_head(CFG, params, jax.random.key(3))}


def _prompts(n):
  return left_pad([TOK.encode(s) for s in TEXTS[:n]], 0, bucket=8)


_HEAVY = pytest.mark.integration   # each case compiles two samplers: seconds each, minutes busy


@pytest.mark.parametrize("batch,kind,k", [
    (3, "model", 3), pytest.param(1, "model", 2, marks=_HEAVY),
    pytest.param(8, "model", 4, marks=_HEAVY), pytest.param(3, "eagle", 3, marks=_HEAVY)])
@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_greedy_matches_plain_with_eos_inside_accepted_runs(target, batch, kind, k):
  tokens, mask = _prompts(batch)
  free = S.sample(CFG, target, tokens, mask, jax.random.key(0),
                  S.SamplingParams(max_new_tokens=24, temperature=0.0))
  # An EOS id and a stop sequence that occur mid-completion, and ragged per-row budgets.
  eos = int(free.tokens_bt[0, 6])
  stop = tuple(int(x) for x in free.tokens_bt[batch - 1, 9:11])
  sp = S.SamplingParams(max_new_tokens=24, temperature=0.0, eos_ids=(eos,), stop_sequences=(stop,))
  budget_b = jnp.asarray([24, 5, 17, 24, 11, 24, 2, 24][:batch], jnp.int32)
  plain = S.sample(CFG, target, tokens, mask, jax.random.key(0), sp, budget_b=budget_b)
  drafter, dp = _drafter(kind, target)
  spec = SP.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(0), sp,
                   SP.SpecParams(num_draft=k), budget_b=budget_b)
  np.testing.assert_array_equal(spec.tokens_bt, plain.tokens_bt)
  np.testing.assert_array_equal(spec.mask_bt, plain.mask_bt)
  np.testing.assert_array_equal(spec.length_b, plain.length_b)
  np.testing.assert_array_equal(spec.finished_b, plain.finished_b)
  np.testing.assert_array_equal(spec.truncated_b, plain.truncated_b)
  np.testing.assert_allclose(spec.logp_bt, plain.logp_bt, atol=1e-4)
  assert 1.0 <= float(spec.mean_accepted) <= k + 1
  if kind == "model":
    assert float(spec.mean_accepted) < k + 1   # rejections happened


def _exact_marginals(params, prompt):
  """Exact target distributions of completion tokens 2 and 3 (T = 1, no truncation), [V] each."""
  v = CFG.vocab_size
  logits, _ = transformer.forward(CFG, params, jnp.asarray([prompt]))
  p1 = jax.nn.softmax(logits[0, -1])
  seq2 = jnp.asarray([prompt + [a] for a in range(v)])
  p2_given = jax.nn.softmax(transformer.forward(CFG, params, seq2)[0][:, -1], axis=-1)
  seq3 = jnp.asarray([prompt + [a, b] for a in range(v) for b in range(v)])
  p3_given = jax.nn.softmax(transformer.forward(CFG, params, seq3)[0][:, -1], axis=-1)
  joint12 = p1[:, None] * p2_given                                    # [V, V]
  return np.asarray(joint12.sum(0)), np.asarray((joint12.reshape(-1, 1) * p3_given).sum(0))


def _chi2_pvalue(counts, probs, min_expected=5.0):
  """Pearson chi-square p-value, bins with expected < `min_expected` pooled into one."""
  counts, probs = np.asarray(counts, np.float64), np.asarray(probs, np.float64)
  n = counts.sum()
  expected = probs / probs.sum() * n
  big = expected >= min_expected
  obs = np.append(counts[big], counts[~big].sum())
  exp = np.append(expected[big], expected[~big].sum())
  keep = exp > 0
  obs, exp = obs[keep], exp[keep] * (n / exp[keep].sum())   # exact totals for scipy's check
  return stats.chisquare(obs, exp).pvalue


@_HEAVY
def test_sampling_keeps_the_target_distribution(target):
  """4000 samples of tokens 2 and 3 (drafted, verified, resampled) against the exact marginals.

  Tokens 2 and 3 are the first and second tokens of the first speculative round, so they cover
  accepted drafts, residual resamples and (k = 2: token 3 can be) the bonus token. Each
  chi-square test has false-alarm rate 1e-3 (p-value threshold); the key is fixed, so the test
  is deterministic. A sampler that ignored rejections (always emitting the draft) fails it: the
  draft here is a noisy copy with acceptance well below 1.
  """
  prompt = TOK.encode("12+3=")
  p2, p3 = _exact_marginals(target, prompt)
  tokens, mask = left_pad([prompt], 0, bucket=8)
  sp = S.SamplingParams(max_new_tokens=3, temperature=1.0)
  drafter, dp = ModelDrafter(CFG), {"params": testing.noisy_copy(target, 1, 0.3)}
  out = SP.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(7), sp,
                  SP.SpecParams(num_draft=2), num_samples=4000)
  toks = np.asarray(out.tokens_bt)
  assert float(out.mean_accepted) < 2.5
  v = CFG.vocab_size
  assert _chi2_pvalue(np.bincount(toks[:, 1], minlength=v), p2) > 1e-3
  assert _chi2_pvalue(np.bincount(toks[:, 2], minlength=v), p3) > 1e-3
  # The draft's own marginal is far from the target's: the test has power.
  qout = S.sample(CFG, dp["params"], tokens, mask, jax.random.key(7), sp, num_samples=4000)
  assert _chi2_pvalue(np.bincount(np.asarray(qout.tokens_bt)[:, 2], minlength=v), p3) < 1e-3


@_HEAVY
def test_sampling_logp_is_the_target_logp_of_emitted_tokens(target):
  """With top-k / top-p, logp_bt is the target's processed log-prob of each emitted token."""
  tokens, mask = _prompts(3)
  sp = S.SamplingParams(max_new_tokens=12, temperature=0.8, top_k=20, top_p=0.9)
  drafter, dp = _drafter("model", target)
  out = SP.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(1), sp,
                  SP.SpecParams(num_draft=3))
  full = jnp.concatenate([tokens, out.tokens_bt], axis=1)
  full_mask = jnp.concatenate([mask, out.mask_bt], axis=1)
  logits, _ = transformer.forward(CFG, target, full, mask_bs=full_mask)
  s = tokens.shape[1]
  lp = jax.nn.log_softmax(S.process_logits(logits[:, s - 1:-1].reshape(-1, CFG.vocab_size), sp))
  lp = lp.reshape(3, 12, -1)
  want = jnp.take_along_axis(lp, out.tokens_bt[..., None], -1)[..., 0] * out.mask_bt
  np.testing.assert_allclose(out.logp_bt, want, atol=1e-4)


@_HEAVY
def test_cache_after_rejections_equals_fresh_prefill(target):
  tokens, mask = _prompts(4)
  sp = S.SamplingParams(max_new_tokens=20, temperature=1.0)
  drafter, dp = _drafter("model", target)
  budget_b = jnp.full((4,), 20, jnp.int32)
  state = jax.jit(lambda: SP.init_state(CFG, drafter, target, dp, tokens, mask, jax.random.key(2),
                                        sp, SP.SpecParams(num_draft=3), 1, budget_b))()
  round_fn = jax.jit(lambda st: SP._round(CFG, drafter, transformer.unstack_layers(target),
                                          drafter.prepare(dp, target), sp, 3, jax.random.key(2),
                                          budget_b, st))
  for _ in range(4):
    state = round_fn(state)
  lengths = np.asarray(state.length_b)
  assert len(set(lengths.tolist())) > 1          # ragged rows
  # The pending token is the last emitted one; feed it and compare with a fresh forward.
  logits_b1v, _, _ = V.verify(CFG, target, state.pending_b[:, None], state.cache)
  out = SP.finalize(state, sp)
  rows = [list(np.asarray(tokens[i])[np.asarray(mask[i]) > 0]) + list(np.asarray(out.tokens_bt[i, :n]))
          for i, n in enumerate(lengths)]
  fresh_tokens, fresh_mask = left_pad(rows, 0, bucket=8)
  fresh, _ = transformer.forward(CFG, target, jnp.asarray(fresh_tokens), mask_bs=fresh_mask)
  np.testing.assert_allclose(logits_b1v[:, 0], fresh[:, -1], atol=1e-4)
