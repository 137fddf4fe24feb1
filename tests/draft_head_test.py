"""EAGLE head: cached block pass == full pass, chunked CE == naive, training raises acceptance."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.draft import EagleDrafter, checkpoint, head as head_lib, testing, training
from concise_jax.models import tiny, transformer
from concise_jax.models import verification as V
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP
from concise_jax.rollout.generate import left_pad

CFG, TOK = tiny.tiny_config(), tiny.CharTokenizer()


@pytest.fixture(scope="module")
def target():
  return testing.sharp_tiny(0)


def _seqs(target, n=16, t=24, seed=0):
  """Target-sampled completions after short prompts: (tokens [n, S+t], mask)."""
  words = ["12+3=", "hello", "x", "what is 2", "9*9", "ab", "the cat", "1", "zz", "47-5"]
  tokens, mask = left_pad([TOK.encode(words[i % len(words)]) for i in range(n)], 0, bucket=8)
  out = S.sample(CFG, target, tokens, mask, jax.random.key(seed),
                 S.SamplingParams(max_new_tokens=t, temperature=1.0))
  return (jnp.concatenate([tokens, out.tokens_bt], 1),
          jnp.concatenate([mask, out.mask_bt], 1), tokens, mask)


def _live_head(target):
  """init_head with its (zero-initialised) output projections filled in, so attention counts."""
  head = head_lib.init_head(CFG, target, jax.random.key(1))
  layer = {**head["layer"], "w_o": target["layers"]["w_o"][0],
           "w_down": target["layers"]["w_down"][0]}
  return {**head, "layer": layer}


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_cached_block_pass_equals_full_pass(target):
  seq, mask, _, _ = _seqs(target, n=3, t=8)
  s = 8 + 3

  @jax.jit
  def passes(seq, mask):
    head = _live_head(target)
    feat, _ = transformer.forward(CFG, target, seq, mask_bs=mask, return_logits=False)
    nxt = jnp.pad(seq[:, 1:], ((0, 0), (0, 1)))
    full = head_lib.head_forward(CFG, head, target, nxt, feat, mask)
    _, cache = head_lib.head_prefill(CFG, head, target, nxt[:, :s], feat[:, :s], mask[:, :s], 40)
    out, cache = head_lib.head_block(CFG, head, target, nxt[:, s:s + 4], feat[:, s:s + 4], cache)
    cache = V.commit(cache, 4, jnp.full((3,), 2, jnp.int32))        # keep 2, roll back 2
    out2, _ = head_lib.head_block(CFG, head, target, nxt[:, s + 2:s + 5], feat[:, s + 2:s + 5],
                                  cache)
    return full, out, out2

  full, out, out2 = passes(seq, mask)
  np.testing.assert_allclose(out, full[:, s:s + 4], atol=1e-4)
  np.testing.assert_allclose(out2, full[:, s + 2:s + 5], atol=1e-4)


@pytest.mark.integration  # compiles its own model programs: ~6 s on 2 cores
def test_chunked_ce_equals_one_chunk(target):
  seq, mask, _, _ = _seqs(target, n=2, t=8)

  @jax.jit
  def losses(seq, mask):
    head = _live_head(target)
    feat, _ = transformer.forward(CFG, target, seq, mask_bs=mask, return_logits=False)
    return (training.eagle_loss(CFG, head, target, seq, feat, mask, training.DistillConfig(chunk=3)),
            training.eagle_loss(CFG, head, target, seq, feat, mask,
                                training.DistillConfig(chunk=seq.shape[1])))

  (l3, m3), (l_all, m_all) = losses(seq, mask)
  np.testing.assert_allclose(l3, l_all, rtol=1e-5)
  np.testing.assert_allclose(m3["top1"], m_all["top1"], rtol=1e-5)


@pytest.mark.integration   # a training run: ~2 min of the default suite on 2 busy cores
def test_training_reduces_loss_and_raises_acceptance(target):
  dc = training.DistillConfig(learning_rate=3e-3)
  state = training.init_state(CFG, target, jax.random.key(1), dc)
  # From a poor head (live output projections). From init_head's identity start the tiny model's
  # repetitive outputs already give ~2.3 accepted, and 60 steps lower the loss but not that.
  state = state.replace(head=_live_head(target))
  state = state.replace(opt_state=training.make_optimizer(dc).init(state.head))
  _, _, prompts, pmask = _seqs(target, n=8, t=4, seed=99)
  sp = S.SamplingParams(max_new_tokens=24, temperature=0.0)

  def accepted(head):
    out = SP.sample(CFG, target, EagleDrafter(CFG), {"head": head}, prompts, pmask,
                    jax.random.key(5), sp, SP.SpecParams(num_draft=3))
    return float(out.mean_accepted)

  before = accepted(state.head)
  losses = []
  for i in range(60):
    seq, mask, _, _ = _seqs(target, n=16, t=24, seed=i % 6)
    state, metrics = training.distill_step(CFG, dc, state, target, seq, mask, jax.random.key(i))
    losses.append(float(metrics["draft/loss"]))
  after = accepted(state.head)
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
  assert after > before + 0.3, (before, after)


def test_saved_head_loads_back_with_its_vocabulary_and_no_temporary_files(target, tmp_path):
  head = head_lib.init_head(CFG, target, jax.random.key(0))
  counts = np.zeros(CFG.vocab_size, np.int64)
  counts[[7, 3, 11]] = [5, 9, 5]           # top 2: id 3 (9), then id 7 (ties go to the lower id)
  checkpoint.save(str(tmp_path), head, counts, {"steps": 1})
  assert sorted(p.name for p in tmp_path.iterdir()) == ["draft_head.npz", "meta.json"]
  loaded = checkpoint.load(str(tmp_path), vocab_size=2)
  assert loaded["vocab_ids"].tolist() == [3, 7]
  for a, b in zip(jax.tree.leaves(loaded["head"]), jax.tree.leaves(head)):
    np.testing.assert_array_equal(a, b)
