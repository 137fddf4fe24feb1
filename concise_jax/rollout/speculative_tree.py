"""Lossless speculative sampling with a dynamic draft tree (EAGLE-2, arXiv 2406.16858).

Each round, per row (static shapes: every row has its own tree of the same N nodes):

  draft   expand a tree from the pending token (the root, depth 0) by draft confidence: the
          product of the draft's probabilities along the path (a sum of log-probs). Depth 1 is
          the draft's top-k; then `depth - 1` times the k most confident nodes of the newest
          level are run through the draft (one block, tree attention) and each gets its top-k
          children. All candidates are reranked and the N - 1 most confident kept with the
          root. Confidence never rises along a path, and ties are broken towards the lower
          candidate index (parents come first), so the kept set is always a tree.
  verify  the target scores all N nodes in ONE forward over its KV cache
          (`verification.verify` with each row's ancestor mask; RoPE position = row position +
          node depth).
  accept  walk down from the root. Greedy: move to the child whose token is the target's argmax
          at the current node. Sampling: the children are fixed candidates x_1..x_m (distinct
          tokens, a deterministic function of the draft); with the target's sampling
          distribution p at the node,

              for i = 1..m:  accept x_i with probability p(x_i) / Σ p;  else p(x_i) ← 0
              if none is accepted: emit y ~ p / Σ p (the residual) and stop.

          This is recursive rejection sampling (SpecInfer, arXiv 2305.09781; without
          replacement: Jeon et al., arXiv 2402.13720) with the draft treated as a point mass
          on each candidate in turn (q_i = δ(x_i), as EAGLE-2 verifies): the residual
          norm((p − q_i)+) is p with x_i removed, renormalised. It is exact: with
          P_j = Σ_{l<j} p(x_l), x_i is emitted with probability
          Π_{j<i} (1 − P_{j+1}) / (1 − P_j) · p(x_i) / (1 − P_i) = p(x_i), and any other token y
          with probability (1 − P_{m+1}) · p(y) / (1 − P_{m+1}) = p(y). Because the candidates
          depend only on the past (never on this round's uniforms), every emitted token is
          distributed exactly as the plain sampler's. A leaf emits y ~ p (the bonus token).
          (`accept` evaluates the loop in closed form: one uniform per child, all children at
          once.)

The accepted path's keys/values, written by the verification at non-contiguous slots, are
copied to contiguous slots at the row's write offset and only those are kept (`verification.
commit`): the cache is then what a prefill of the accepted tokens gives. The drafter consumes
the accepted path as a chain (`drafter.commit`). Stop rules, log-probs, per-row budgets and the
token buffers are the chain sampler's (`rollout.speculative`): one round emits at most
depth + 1 tokens per row.
"""
# pylint: disable=protected-access   (the chain sampler's state, emit and pinning helpers)
import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp

from concise_jax import sharding
from concise_jax.models import transformer
from concise_jax.models import verification as V
from concise_jax.models.config import ModelConfig
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP


@dataclasses.dataclass(frozen=True)
class TreeParams:
  """Static tree settings: `top_k` children per expanded node, `depth` draft levels, and the
  static budget of `num_nodes` verified nodes per row (root included)."""
  top_k: int = 4
  depth: int = 4
  num_nodes: int = 16

  def __post_init__(self):
    candidates = self.top_k + (self.depth - 1) * self.top_k ** 2
    if not (self.top_k >= 1 and self.depth >= 1 and 2 <= self.num_nodes <= candidates + 1):
      raise ValueError(f"tree needs top_k >= 1, depth >= 1 and 2 <= num_nodes <= {candidates + 1} "
                       f"(the candidates a top_k={self.top_k}, depth={self.depth} expansion "
                       f"makes, plus the root); got {self}")


@flax.struct.dataclass
class Tree:
  """One round's draft tree per row; node 0 is the root (the pending token), parents first."""
  tokens_bn: jax.Array   # [B, N] target token ids
  parent_bn: jax.Array   # [B, N] parent node index (the root is its own parent)
  depth_bn: jax.Array    # [B, N] tokens after the root (root 0)
  mask_bnn: jax.Array    # [B, N, N] mask[b, i, j]: node j is node i or one of its ancestors


def ancestor_mask(parent_bn: jax.Array, max_depth: int) -> jax.Array:
  """[B, N, N] ancestor-or-self mask from parent pointers (parent < child, root is its own)."""
  n = parent_bn.shape[1]
  eye_nn = jnp.eye(n, dtype=bool)
  mask_bnn = jnp.broadcast_to(eye_nn, parent_bn.shape + (n,))
  for _ in range(max_depth):
    mask_bnn = eye_nn | jnp.take_along_axis(mask_bnn, parent_bn[:, :, None], axis=1)
  return mask_bnn


def _gather(x_bm, idx_bk):
  """x[b, idx[b, k]] for [B, M] or [B, M, ...] arrays."""
  idx = idx_bk.reshape(idx_bk.shape + (1,) * (x_bm.ndim - 2))
  return jnp.take_along_axis(x_bm, idx, axis=1)


def build_tree(drafter, dp, tp, state: SP.SpecState, root_b: jax.Array,
               tree: TreeParams) -> Tree:
  """EAGLE-2 expansion and rerank (module docstring); root_b is the pending token."""
  k, n = tree.top_k, tree.num_nodes
  b = root_b.shape[0]
  score_bk, ids_bk = jax.lax.top_k(jax.nn.log_softmax(state.dlogits_bv, axis=-1), k)
  # Candidates, level by level: token, confidence, parent candidate (-1: the root), depth.
  c_tok = [drafter.to_target(dp, ids_bk).astype(jnp.int32)]
  c_score, c_parent = [score_bk], [jnp.full((b, k), -1, jnp.int32)]
  c_depth = [jnp.ones((k,), jnp.int32)]
  level_start, level_size = 0, k
  # Expanded nodes ("E"), run through the draft as one block with tree attention.
  e_tok = e_feat = e_mask = None
  e_depth = jnp.zeros((0,), jnp.int32)
  e_of_cand = jnp.full((b, k), -1, jnp.int32)   # candidate -> its index in E (or -1)
  out_feat_bed = None
  root_feat_bd = state.dstate.feat_bd
  for level in range(1, tree.depth):
    tok_bm, score_bm = jnp.concatenate(c_tok, 1), jnp.concatenate(c_score, 1)
    parent_bm = jnp.concatenate(c_parent, 1)
    level_score = score_bm[:, level_start:level_start + level_size]
    pick_bk = level_start + jax.lax.top_k(level_score, k)[1]          # most confident k
    ne = 0 if e_tok is None else e_tok.shape[1]
    par_c_bk = _gather(parent_bm, pick_bk)
    par_e_bk = jnp.where(par_c_bk < 0, -1, _gather(e_of_cand, jnp.maximum(par_c_bk, 0)))
    if level == 1:
      feat_bkd = jnp.broadcast_to(root_feat_bd[:, None], (b, k) + root_feat_bd.shape[1:])
    else:
      feat_bkd = _gather(out_feat_bed, jnp.maximum(par_e_bk, 0))
    # Mask rows of the new nodes: themselves plus their parent's row (ancestors in E).
    new_mask = jax.nn.one_hot(ne + jnp.arange(k), ne + k, dtype=bool)[None]
    if e_tok is not None:
      prev_mask = jnp.pad(e_mask, ((0, 0), (0, 0), (0, k)))
      par_rows = _gather(prev_mask, jnp.maximum(par_e_bk, 0))
      new_mask = new_mask | (par_rows & (par_e_bk >= 0)[..., None])
      e_mask = jnp.concatenate([prev_mask, jnp.broadcast_to(new_mask, (b, k, ne + k))], 1)
      e_tok = jnp.concatenate([e_tok, _gather(tok_bm, pick_bk)], 1)
      e_feat = jnp.concatenate([e_feat, feat_bkd.astype(e_feat.dtype)], 1)
    else:
      e_mask = jnp.broadcast_to(new_mask, (b, k, k))
      e_tok, e_feat = _gather(tok_bm, pick_bk), feat_bkd
    e_depth = jnp.concatenate([e_depth, jnp.full((k,), level, jnp.int32)])
    e_of_cand = jnp.pad(e_of_cand, ((0, 0), (0, tok_bm.shape[1] - e_of_cand.shape[1])),
                        constant_values=-1)
    e_of_cand = e_of_cand.at[jnp.arange(b)[:, None], pick_bk].set(ne + jnp.arange(k))
    dlogits_bev, out_feat_bed = drafter.tree_block(dp, tp, state.dstate, e_tok, e_feat, e_depth,
                                                   e_mask)
    child_s, child_i = jax.lax.top_k(jax.nn.log_softmax(dlogits_bev[:, -k:], axis=-1), k)
    level_start, level_size = tok_bm.shape[1], k * k
    c_tok.append(drafter.to_target(dp, child_i).reshape(b, k * k).astype(jnp.int32))
    c_score.append((_gather(score_bm, pick_bk)[:, :, None] + child_s).reshape(b, k * k))
    c_parent.append(jnp.repeat(pick_bk, k, axis=1).astype(jnp.int32))
    c_depth.append(jnp.full((k * k,), level + 1, jnp.int32))
  tok_bm, score_bm = jnp.concatenate(c_tok, 1), jnp.concatenate(c_score, 1)
  parent_bm, depth_m = jnp.concatenate(c_parent, 1), jnp.concatenate(c_depth)
  # Rerank: the N - 1 most confident candidates (top_k breaks ties towards the lower index, so
  # a parent is never dropped before its child), in candidate order (parents first).
  keep_bn1 = jnp.sort(jax.lax.top_k(score_bm, n - 1)[1], axis=1)
  node_of_cand = jnp.zeros_like(tok_bm).at[jnp.arange(b)[:, None], keep_bn1].set(
      1 + jnp.arange(n - 1))
  par_c = _gather(parent_bm, keep_bn1)
  parent_bn = jnp.concatenate(
      [jnp.zeros((b, 1), jnp.int32),
       jnp.where(par_c < 0, 0, _gather(node_of_cand, jnp.maximum(par_c, 0)))], 1)
  tokens_bn = jnp.concatenate([root_b[:, None].astype(jnp.int32), _gather(tok_bm, keep_bn1)], 1)
  depth_bn = jnp.concatenate([jnp.zeros((b, 1), jnp.int32), jnp.take(depth_m, keep_bn1)], 1)
  return Tree(tokens_bn=tokens_bn, parent_bn=parent_bn, depth_bn=depth_bn,
              mask_bnn=ancestor_mask(parent_bn, tree.depth))


def accept(key, logp_bnv: jax.Array, t: Tree, max_depth: int, sp: S.SamplingParams):
  """Walks the tree (module docstring). Returns (path_bw node indices [B, depth + 1], m_b
  accepted drafts, y_b the target's token after the last accepted node)."""
  b, n, v = logp_bnv.shape
  cur_b = jnp.zeros((b,), jnp.int32)
  walking_b = jnp.ones((b,), bool)
  m_b = jnp.zeros((b,), jnp.int32)
  path = [cur_b]
  resid_bv = jnp.exp(_gather(logp_bnv, cur_b[:, None])[:, 0])
  for step in range(max_depth):
    logp_bv = _gather(logp_bnv, cur_b[:, None])[:, 0]
    child_bn = (t.parent_bn == cur_b[:, None]) & (jnp.arange(n) > 0)
    if sp.temperature == 0.0:
      hit_bn = child_bn & (t.tokens_bn == jnp.argmax(logp_bv, axis=-1)[:, None])
      found_b = walking_b & jnp.any(hit_bn, axis=1)
      nxt_b = jnp.argmax(hit_bn, axis=1).astype(jnp.int32)
    else:
      # The sequential rule in closed form: candidates are distinct tokens, so after rejecting
      # the earlier children the residual mass is Σp − Σ_{earlier} p(x_l), and child i is
      # accepted iff u_i · that mass < p(x_i) (first such child wins).
      p_bv = jnp.exp(logp_bv)
      px_bn = jnp.where(child_bn, jnp.take_along_axis(p_bv, t.tokens_bn, axis=1), 0.0)
      before_bn = jnp.cumsum(px_bn, axis=1) - px_bn
      u_bn = jax.random.uniform(jax.random.fold_in(key, step), (b, n))
      mass_bn = jnp.sum(p_bv, axis=-1, keepdims=True) - before_bn
      ok_bn = child_bn & (px_bn > 0) & (u_bn * mass_bn < px_bn)
      found_b = walking_b & jnp.any(ok_bn, axis=1)
      nxt_b = jnp.argmax(ok_bn, axis=1).astype(jnp.int32)
      # If every child was rejected: p with all children's tokens removed (unnormalised).
      p_bv = p_bv.at[jnp.arange(b)[:, None], t.tokens_bn].multiply(
          jnp.where(child_bn, 0.0, 1.0))
      # Rows that stop here sample from this node's residual.
      resid_bv = jnp.where((walking_b & ~found_b)[:, None], p_bv, resid_bv)
    walking_b &= found_b
    cur_b = jnp.where(found_b, nxt_b, cur_b)
    m_b += found_b.astype(jnp.int32)
    path.append(jnp.where(found_b, nxt_b, 0))
  logp_end_bv = _gather(logp_bnv, cur_b[:, None])[:, 0]
  if sp.temperature == 0.0:
    y_b = jnp.argmax(logp_end_bv, axis=-1)
  else:
    resid_bv = jnp.where(walking_b[:, None], jnp.exp(logp_end_bv), resid_bv)
    # Rejections leave positive mass unless p was a point mass on a rejected token (float
    # round-off only): fall back to p then.
    ok_b = jnp.sum(resid_bv, axis=-1) > 1e-12
    dist_bv = jnp.where(ok_b[:, None], jnp.log(resid_bv), logp_end_bv)
    y_b = S.sample_categorical(jax.random.fold_in(key, max_depth), dist_bv)
  return jnp.stack(path, axis=1), m_b, y_b.astype(jnp.int32)


def keep_path(cache: transformer.KVCache, path_bw: jax.Array, n: int,
              n_keep_b: jax.Array) -> transformer.KVCache:
  """Copies the path's K/V (block slots end + path) to end .. end + W, keeps n_keep of them."""
  end_b = V.row_ends(cache)
  src_bw = end_b[:, None] + path_bw
  move = lambda buf: V.write_rows(
      buf, jnp.take_along_axis(buf, src_bw[:, None, :, None], axis=2), end_b)
  cache = cache.replace(k_bksh=tuple(move(x) for x in cache.k_bksh),
                        v_bksh=tuple(move(x) for x in cache.v_bksh))
  return V.commit(cache, n, n_keep_b)


def _round(tcfg, drafter, tp, dp, sp, tree: TreeParams, key, budget_b,
           state: SP.SpecState) -> SP.SpecState:
  key = jax.random.fold_in(key, state.round)
  t = build_tree(drafter, dp, tp, state, state.pending_b, tree)
  logits_bnv, feat_bnd, cache = V.verify(tcfg, tp, t.tokens_bn, state.cache, depth_w=t.depth_bn,
                                         block_mask_ww=t.mask_bnn)
  b, n, v = logits_bnv.shape
  logp_bnv = SP._target_logp(logits_bnv.reshape(b * n, v), sp).reshape(b, n, v)
  path_bw, m_b, y_b = accept(jax.random.fold_in(key, 1), logp_bnv, t, tree.depth, sp)
  w = tree.depth + 1
  j_w = jnp.arange(w)
  next_bw = jnp.concatenate([_gather(t.tokens_bn, path_bw[:, 1:]),
                             jnp.full((b, 1), sp.pad_id, jnp.int32)], axis=1)
  next_bw = jnp.where(j_w[None] == m_b[:, None], y_b[:, None],
                      jnp.where(j_w[None] < m_b[:, None], next_bw, sp.pad_id))
  logp_path_bwv = _gather(logp_bnv, path_bw)
  logp_emit_bw = jnp.take_along_axis(logp_path_bwv, next_bw[..., None], axis=-1)[..., 0]
  live_b = ~state.done_b
  fields, _ = SP._emit(state, next_bw, jnp.where(j_w[None] <= m_b[:, None], logp_emit_bw, 0.0),
                       m_b + 1, budget_b, sp)
  n_keep_b = jnp.where(live_b, m_b + 1, 0)
  cache = keep_path(cache, path_bw, n, n_keep_b)
  dstate, dlogits_bv = drafter.commit(dp, tp, state.dstate, next_bw, _gather(feat_bnd, path_bw),
                                      n_keep_b)
  return state.replace(
      round=state.round + 1, cache=cache, pending_b=y_b, dstate=dstate, dlogits_bv=dlogits_bv,
      accepted_sum=state.accepted_sum + jnp.sum(jnp.where(live_b, m_b + 1, 0)),
      live_rounds=state.live_rounds + jnp.sum(live_b), **fields)


def init_state(tcfg: ModelConfig, drafter, params: dict, dp: dict, prompt_tokens_ps,
               prompt_mask_ps, key, sp: S.SamplingParams, tree: TreeParams, num_samples: int,
               budget_b) -> SP.SpecState:
  """The chain sampler's prefill, with cache and buffers sized for an N-node verified block."""
  return SP.init_state(tcfg, drafter, params, dp, prompt_tokens_ps, prompt_mask_ps, key, sp,
                       SP.SpecParams(num_draft=max(tree.num_nodes, tree.depth + 1)),
                       num_samples, budget_b)


@functools.partial(jax.jit, static_argnames=("tcfg", "drafter", "sp", "tree", "num_samples",
                                             "layout"))
def sample(tcfg: ModelConfig, params: dict, drafter, draft_params: dict,
           prompt_tokens_ps: jax.Array, prompt_mask_ps: jax.Array, key: jax.Array,
           sp: S.SamplingParams, tree: TreeParams = TreeParams(), *, num_samples: int = 1,
           budget_b: jax.Array | None = None,
           layout: sharding.Layout | None = None) -> SP.SpecOutput:
  """Tree counterpart of `speculative.sample` (same arguments, `tree` instead of `spec`).

  Returns the plain SampleOutput fields (same distribution; per-token target log-probs under
  the sampling distribution, as `sampler.sample` returns them) plus `mean_accepted` (tokens
  emitted per target forward per row).
  """
  b = prompt_tokens_ps.shape[0] * num_samples
  t = sp.max_new_tokens
  budget_b = jnp.full((b,), t, jnp.int32) if budget_b is None else jnp.minimum(budget_b, t)
  state = init_state(tcfg, drafter, params, draft_params, prompt_tokens_ps, prompt_mask_ps, key,
                     sp, tree, num_samples, budget_b)
  state = SP._pin_rows(layout, state, b)
  loop_params = transformer.unstack_layers(params)
  step_fn = functools.partial(_round, tcfg, drafter, loop_params,
                              drafter.prepare(draft_params, loop_params), sp, tree, key, budget_b)
  pinned_step = lambda st: SP._pin_rows(layout, step_fn(st), b)
  state = jax.lax.while_loop(lambda st: (st.round < t) & ~jnp.all(st.done_b), pinned_step, state)
  return SP.finalize(state, sp)
