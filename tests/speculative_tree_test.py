"""Tree speculative sampler (EAGLE-2): greedy equals plain greedy token for token; sampling keeps
the target's distribution; tree masks/positions score every node as a fresh forward of its path;
the cache after acceptance equals a fresh prefill of the accepted text."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.draft import EagleDrafter, ModelDrafter, init_head, testing
from concise_jax.models import tiny, transformer
from concise_jax.models import verification as V
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP
from concise_jax.rollout import speculative_tree as ST
from concise_jax.rollout.generate import left_pad
from tests.speculative_sampler_test import _chi2_pvalue, _exact_marginals

CFG, TOK = tiny.tiny_config(), tiny.CharTokenizer()
TEXTS = ["12+3=", "hello world abc", "x", "what is 2", "9*9", "ab", "the cat", "1"]
TREE = ST.TreeParams(top_k=3, depth=3, num_nodes=10)
_HEAVY = pytest.mark.integration   # each compiles a tree sampler or a round: ~40-90 s here


@pytest.fixture(scope="module")
def target():
  return testing.sharp_tiny(0)


def _drafter(kind, params):
  if kind == "model":   # a noisy copy agrees ~half the time: ragged acceptance
    return ModelDrafter(CFG), {"params": testing.noisy_copy(params, 1, 0.1)}
  return EagleDrafter(CFG), {"head": init_head(CFG, params, jax.random.key(3))}


def _prompts(n):
  return left_pad([TOK.encode(s) for s in TEXTS[:n]], 0, bucket=8)


def test_ancestor_mask_and_depths_of_a_hand_built_tree():
  #        0
  #      1   2
  #     3 4   5
  #     6
  parent = jnp.asarray([[0, 0, 0, 1, 1, 2, 3]])
  mask = np.asarray(ST.ancestor_mask(parent, 3))[0]
  want = {0: [0], 1: [0, 1], 2: [0, 2], 3: [0, 1, 3], 4: [0, 1, 4], 5: [0, 2, 5], 6: [0, 1, 3, 6]}
  for i, anc in want.items():
    np.testing.assert_array_equal(np.flatnonzero(mask[i]), anc)
  np.testing.assert_array_equal(mask.sum(-1) - 1, [0, 1, 1, 2, 2, 2, 3])   # depths


def test_tree_verification_scores_each_node_as_a_fresh_forward_of_its_path(target):
  """One forward over the cache with the ancestor mask and depth positions gives, at every node,
  the logits of a plain forward of prompt + the path to that node (two rows, different trees)."""
  tokens, mask = _prompts(2)
  _, _, cache = V.prefill_with_features(CFG, target, tokens, mask, 32)
  parent = jnp.asarray([[0, 0, 0, 1, 1, 2, 3], [0, 0, 1, 2, 2, 0, 5]])
  nodes = jnp.asarray([[7, 11, 12, 13, 14, 15, 16], [21, 22, 23, 24, 25, 26, 27]])
  anc = ST.ancestor_mask(parent, 3)
  logits, _, _ = V.verify(CFG, target, nodes, cache, depth_w=jnp.sum(anc, -1) - 1,
                          block_mask_ww=anc)
  seqs = []
  for b in range(2):
    prompt = list(np.asarray(tokens[b])[np.asarray(mask[b]) > 0])
    for i in range(7):
      seqs.append(prompt + [int(nodes[b, j]) for j in np.flatnonzero(np.asarray(anc[b, i]))])
  fresh_tokens, fresh_mask = left_pad(seqs, 0, bucket=8)
  fresh, _ = transformer.forward(CFG, target, jnp.asarray(fresh_tokens), mask_bs=fresh_mask)
  np.testing.assert_allclose(logits.reshape(14, -1), fresh[:, -1], atol=1e-4)


def test_built_tree_is_a_tree_ranked_by_draft_confidence(target):
  tokens, mask = _prompts(3)
  drafter, dp = _drafter("model", target)
  sp = S.SamplingParams(max_new_tokens=8, temperature=0.0)
  state = jax.jit(lambda: ST.init_state(CFG, drafter, target, dp, tokens, mask,
                                        jax.random.key(0), sp, TREE, 1,
                                        jnp.full((3,), 8, jnp.int32)))()
  t = jax.jit(lambda st: ST.build_tree(drafter, drafter.prepare(dp, target), target, st,
                                       st.pending_b, TREE))(state)
  parent, depth = np.asarray(t.parent_bn), np.asarray(t.depth_bn)
  assert (parent[:, 1:] < np.arange(1, TREE.num_nodes)).all()            # parents first
  np.testing.assert_array_equal(depth[:, 1:], depth[np.arange(3)[:, None], parent[:, 1:]] + 1)
  np.testing.assert_array_equal(np.asarray(t.mask_bnn).sum(-1) - 1, depth)
  assert depth.max() == TREE.depth and (np.asarray(t.tokens_bn[:, 0]) == state.pending_b).all()
  # Depth-1 nodes are the draft's top tokens after the root, most probable included.
  first = np.asarray(jnp.argmax(state.dlogits_bv, -1))
  for b in range(3):
    assert first[b] in np.asarray(t.tokens_bn[b])[depth[b] == 1]


@pytest.mark.parametrize("batch,kind", [
    (3, "model"), pytest.param(1, "model", marks=_HEAVY), pytest.param(3, "eagle", marks=_HEAVY)])
def test_greedy_tree_matches_plain_with_eos_inside_accepted_paths(target, batch, kind):
  tokens, mask = _prompts(batch)
  free = S.sample(CFG, target, tokens, mask, jax.random.key(0),
                  S.SamplingParams(max_new_tokens=24, temperature=0.0))
  eos = int(free.tokens_bt[0, 6])
  stop = tuple(int(x) for x in free.tokens_bt[batch - 1, 9:11])
  sp = S.SamplingParams(max_new_tokens=24, temperature=0.0, eos_ids=(eos,), stop_sequences=(stop,))
  budget_b = jnp.asarray([24, 5, 17][:batch], jnp.int32)
  plain = S.sample(CFG, target, tokens, mask, jax.random.key(0), sp, budget_b=budget_b)
  drafter, dp = _drafter(kind, target)
  spec = ST.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(0), sp, TREE,
                   budget_b=budget_b)
  np.testing.assert_array_equal(spec.tokens_bt, plain.tokens_bt)
  np.testing.assert_array_equal(spec.mask_bt, plain.mask_bt)
  np.testing.assert_array_equal(spec.length_b, plain.length_b)
  np.testing.assert_array_equal(spec.finished_b, plain.finished_b)
  np.testing.assert_array_equal(spec.truncated_b, plain.truncated_b)
  np.testing.assert_allclose(spec.logp_bt, plain.logp_bt, atol=1e-4)
  assert 1.0 <= float(spec.mean_accepted) <= TREE.depth + 1
  if kind == "model":
    assert 1.0 < float(spec.mean_accepted) < TREE.depth + 1   # ragged: some, not all, accepted


@_HEAVY   # compiles a sampled round: ~40 s on the loaded 2-core machine
def test_cache_after_acceptance_equals_fresh_prefill(target):
  """Sampled rounds (rejections, residual resamples), then the next logits from the cache."""
  tokens, mask = _prompts(4)
  sp = S.SamplingParams(max_new_tokens=20, temperature=1.0)
  drafter, dp = _drafter("model", target)
  budget_b = jnp.full((4,), 20, jnp.int32)
  state = jax.jit(lambda: ST.init_state(CFG, drafter, target, dp, tokens, mask,
                                        jax.random.key(2), sp, TREE, 1, budget_b))()
  round_fn = jax.jit(lambda st: ST._round(CFG, drafter, transformer.unstack_layers(target),
                                          drafter.prepare(dp, target), sp, TREE,
                                          jax.random.key(2), budget_b, st))
  for _ in range(3):
    state = round_fn(state)
  lengths = np.asarray(state.length_b)
  assert len(set(lengths.tolist())) > 1          # ragged rows
  logits_b1v, _, _ = V.verify(CFG, target, state.pending_b[:, None], state.cache)
  out = SP.finalize(state, sp)
  rows = [list(np.asarray(tokens[i])[np.asarray(mask[i]) > 0])
          + list(np.asarray(out.tokens_bt[i, :n])) for i, n in enumerate(lengths)]
  fresh_tokens, fresh_mask = left_pad(rows, 0, bucket=8)
  fresh, _ = transformer.forward(CFG, target, jnp.asarray(fresh_tokens), mask_bs=fresh_mask)
  np.testing.assert_allclose(logits_b1v[:, 0], fresh[:, -1], atol=1e-5)


@_HEAVY
def test_tree_sampling_keeps_the_target_distribution(target):
  """4000 samples of completion tokens 2 and 3 against the exact marginals.

  Tokens 2 and 3 are emitted by the first tree round: accepted nodes (depth 1 and 2), residual
  resamples after rejected siblings, and the bonus token. Each chi-square test has false-alarm
  rate 1e-3 (p-value threshold); the key is fixed, so the test is deterministic. The draft is a
  noisy copy (acceptance well below the tree depth), and its own marginal fails the same test.
  """
  prompt = TOK.encode("12+3=")
  p2, p3 = _exact_marginals(target, prompt)
  tokens, mask = left_pad([prompt], 0, bucket=8)
  sp = S.SamplingParams(max_new_tokens=3, temperature=1.0)
  drafter, dp = ModelDrafter(CFG), {"params": testing.noisy_copy(target, 1, 0.3)}
  tree = ST.TreeParams(top_k=2, depth=2, num_nodes=5)
  out = ST.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(7), sp, tree,
                  num_samples=4000)
  toks = np.asarray(out.tokens_bt)
  assert float(out.mean_accepted) < 2.5
  v = CFG.vocab_size
  assert _chi2_pvalue(np.bincount(toks[:, 1], minlength=v), p2) > 1e-3
  assert _chi2_pvalue(np.bincount(toks[:, 2], minlength=v), p3) > 1e-3
  qout = S.sample(CFG, dp["params"], tokens, mask, jax.random.key(7), sp, num_samples=4000)
  assert _chi2_pvalue(np.bincount(np.asarray(qout.tokens_bt)[:, 2], minlength=v), p3) < 1e-3


@_HEAVY
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sharded_tree_sampler_equals_one_device(target, temperature):
  from concise_jax import distributed, models, sharding   # pylint: disable=import-outside-toplevel
  layout = sharding.Layout.of(sharding.make_mesh((1, 8, 1)), sharding.DEFAULT_RULES)
  shardings = sharding.tree_shardings(layout.mesh, models.param_axes(CFG), layout.rules, target)
  placed = distributed.put(target, shardings)
  tokens, mask = _prompts(4)
  sp = S.SamplingParams(max_new_tokens=12, temperature=temperature, eos_ids=(3,))
  drafter, dp = _drafter("model", target)
  args = (tokens, mask, jax.random.key(5), sp, TREE)
  single = ST.sample(CFG, target, drafter, dp, *args, num_samples=2)
  sharded = ST.sample(CFG, placed, drafter, dp, *args, num_samples=2, layout=layout)
  np.testing.assert_array_equal(sharded.tokens_bt, single.tokens_bt)
  np.testing.assert_array_equal(sharded.length_b, single.length_b)
  np.testing.assert_allclose(sharded.logp_bt, single.logp_bt, atol=1e-5)


@_HEAVY
@pytest.mark.parametrize("kind", ["model", "eagle"])
def test_one_wide_tree_is_the_chain(target, kind):
  """top_k = 1, depth = k, N = k + 1 drafts exactly the chain's k tokens each round: identical
  outputs and the same mean accepted length (greedy), for both drafters' tree and chain paths."""
  tokens, mask = _prompts(3)
  sp = S.SamplingParams(max_new_tokens=24, temperature=0.0)
  drafter, dp = _drafter(kind, target)
  chain = SP.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(0), sp,
                    SP.SpecParams(num_draft=3), num_samples=2)
  tree = ST.sample(CFG, target, drafter, dp, tokens, mask, jax.random.key(0), sp,
                   ST.TreeParams(top_k=1, depth=3, num_nodes=4), num_samples=2)
  np.testing.assert_array_equal(tree.tokens_bt, chain.tokens_bt)
  np.testing.assert_allclose(tree.logp_bt, chain.logp_bt, atol=1e-5)
  assert float(tree.mean_accepted) == pytest.approx(float(chain.mean_accepted), abs=1e-6)
