"""Drafters for the speculative sampler: an EAGLE head, or any smaller model with the same vocab.

A drafter is a hashable (jit-static) object with three pure methods over `(draft_params,
target_params, state, ...)`; the sampler never asks which kind it has:

  init(dp, tp, prompt_bs, mask_bs, feat_bsd, first_b, max_len) -> (state, dlogits_bv)
      after the target's prefill; `first_b` is the first sampled token (not yet in any cache).
  step(dp, tp, state, tok_b) -> (state, dlogits_bv)
      one speculative draft step; its cache slot is provisional.
  commit(dp, tp, state, next_bw, feat_bwd, n_keep_b) -> (state, dlogits_bv)
      after verification: rewinds the provisional steps and consumes the verified block.
      next_bw [B, W] are the tokens that follow each verified position (the accepted drafts then
      the target's correction/bonus token), feat_bwd the target's features at those positions,
      n_keep_b how many are real. dlogits come from the last real one.

Tree drafting (EAGLE-2, arXiv 2406.16858; `rollout.speculative_tree`) adds one pure method:

  tree_block(dp, tp, state, tok_be, feat_bed, depth_e, mask_bee) -> (dlogits_bev, feat_bed)
      scores E tree nodes at once over the committed draft cache without writing it: node e
      sits `depth_e[e]` tokens after the pending one and attends to the cache plus the nodes
      `mask_bee[:, e]` marks (its ancestors and itself). `feat_bed` is each node's input
      feature (EAGLE: its parent's predicted feature, `state.feat_bd` for depth-1 nodes);
      returns the draft logits for each node's children and each node's predicted feature.

`dlogits_bv` are over the draft vocabulary [B, Vd]; `to_target(dp, ids)` maps draft ids to
target ids. `draft_params` is {"head", "vocab_ids"} for EAGLE and {"params"} for a model draft;
`prepare(dp, tp)` precomputes loop constants from them once, outside the decode loop.
"""
import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

from concise_jax.draft import head as head_lib
from concise_jax.models import layers as L
from concise_jax.models import transformer
from concise_jax.models import verification as V
from concise_jax.models.config import ModelConfig


@flax.struct.dataclass
class DraftState:
  cache: transformer.KVCache   # the draft's own cache (one layer for EAGLE), per-row `end`
  feat_bd: jax.Array           # [B, D] last predicted feature (EAGLE), zeros [B, 1] otherwise
  n_spec: jax.Array            # [] int32 provisional steps since the last commit


def _rewind(state: DraftState) -> transformer.KVCache:
  """Drops the provisional steps: moves the write offset back and marks their slots invalid
  (left valid, the re-fed block would also attend to the stale draft entries, future ones
  included)."""
  c = state.cache
  end_b = V.row_ends(c) - state.n_spec
  rel_bs = jnp.arange(c.valid_bs.shape[1])[None, :] - end_b[:, None]
  stale_bs = (rel_bs >= 0) & (rel_bs < state.n_spec)
  return c.replace(valid_bs=c.valid_bs & ~stale_bs, end=end_b, pos_b=c.pos_b - state.n_spec)


def _gather_w(x_bw, idx_b):
  return jnp.take_along_axis(x_bw, idx_b.reshape((-1,) + (1,) * (x_bw.ndim - 1)), axis=1)[:, 0]


@dataclasses.dataclass(frozen=True)
class EagleDrafter:
  """EAGLE chain drafter (arXiv 2401.15077) over the target's features."""
  cfg: ModelConfig   # the target's config (the head shares its layer shapes and LM head)

  def _logits(self, dp, tp, feat_bd):
    w_dv = dp.get("w_dv")
    if w_dv is None:
      w_dv = head_lib.lm_weights(self.cfg, tp, dp.get("vocab_ids"))
    return jnp.einsum("bd,dv->bv", feat_bd, w_dv.astype(feat_bd.dtype)).astype(jnp.float32)

  def prepare(self, dp, tp):
    """Slices the draft vocabulary's LM-head columns once, outside the decode loop."""
    if dp.get("vocab_ids") is None:
      return dp
    return {**dp, "w_dv": head_lib.lm_weights(self.cfg, tp, dp["vocab_ids"])}

  def to_target(self, dp, ids):
    vocab = dp.get("vocab_ids")
    return ids if vocab is None else jnp.take(vocab, ids)

  def init(self, dp, tp, prompt_bs, mask_bs, feat_bsd, first_b, max_len):
    next_bs = jnp.concatenate([prompt_bs[:, 1:], first_b[:, None]], axis=1)
    feat_bd, cache = head_lib.head_prefill(self.cfg, dp["head"], tp, next_bs, feat_bsd, mask_bs,
                                           max_len)
    state = DraftState(cache=cache, feat_bd=feat_bd, n_spec=jnp.zeros((), jnp.int32))
    return state, self._logits(dp, tp, feat_bd)

  def step(self, dp, tp, state, tok_b):
    out_b1d, cache = head_lib.head_block(self.cfg, dp["head"], tp, tok_b[:, None],
                                         state.feat_bd[:, None], state.cache)
    cache = V.commit(cache, 1, jnp.ones_like(tok_b))
    state = DraftState(cache=cache, feat_bd=out_b1d[:, 0], n_spec=state.n_spec + 1)
    return state, self._logits(dp, tp, out_b1d[:, 0])

  def tree_block(self, dp, tp, state, tok_be, feat_bed, depth_e, mask_bee):
    cache = state.cache
    positions_be = cache.pos_b[:, None] + depth_e[None, :] - 1
    cos, sin = L.rope_cos_sin(positions_be, L.rope_inv_freq(self.cfg))
    attend = lambda q, k, v: V.block_attention(q, k, v, cache.k_bksh[0], cache.v_bksh[0],
                                               cache.valid_bs, mask_bee, self.cfg)
    x = head_lib.fc_input(self.cfg, dp["head"], tp, tok_be, feat_bed)
    layer = head_lib._layer  # pylint: disable=protected-access
    out_bed, _ = layer(self.cfg, dp["head"]["layer"], x, cos, sin, attend)
    b, e, d = out_bed.shape
    return self._logits(dp, tp, out_bed.reshape(b * e, d)).reshape(b, e, -1), out_bed

  def commit(self, dp, tp, state, next_bw, feat_bwd, n_keep_b):
    out_bwd, cache = head_lib.head_block(self.cfg, dp["head"], tp, next_bw, feat_bwd,
                                         _rewind(state))
    cache = V.commit(cache, next_bw.shape[1], n_keep_b)
    feat_bd = _gather_w(out_bwd, jnp.maximum(n_keep_b - 1, 0))
    state = DraftState(cache=cache, feat_bd=feat_bd, n_spec=jnp.zeros((), jnp.int32))
    return state, self._logits(dp, tp, feat_bd)


@dataclasses.dataclass(frozen=True)
class ModelDrafter:
  """A smaller causal LM with the target's tokenizer as the draft (Leviathan et al. 2211.17192)."""
  cfg: ModelConfig   # the draft model's config

  def prepare(self, dp, tp):
    """Per-layer draft weights, sliced once outside the decode loop."""
    del tp
    return {"params": transformer.unstack_layers(dp["params"])}

  def to_target(self, dp, ids):
    del dp
    return ids

  def _feed(self, dp, state, block_bw, n_keep_b):
    cache = _rewind(state)
    logits_bwv, _, cache = V.verify(self.cfg, dp["params"], block_bw, cache)
    cache = V.commit(cache, block_bw.shape[1], n_keep_b)
    return cache, _gather_w(logits_bwv, jnp.maximum(n_keep_b - 1, 0))

  def init(self, dp, tp, prompt_bs, mask_bs, feat_bsd, first_b, max_len):
    del tp, feat_bsd
    _, _, cache = V.prefill_with_features(self.cfg, dp["params"], prompt_bs, mask_bs, max_len)
    state = DraftState(cache=cache, feat_bd=jnp.zeros((first_b.shape[0], 1)),
                       n_spec=jnp.zeros((), jnp.int32))
    cache, logits_bv = self._feed(dp, state, first_b[:, None], jnp.ones_like(first_b))
    return state.replace(cache=cache), logits_bv

  def tree_block(self, dp, tp, state, tok_be, feat_bed, depth_e, mask_bee):
    del tp
    logits_bev, _, _ = V.verify(self.cfg, dp["params"], tok_be, _rewind(state),
                                depth_w=depth_e - 1, block_mask_ww=mask_bee)
    return logits_bev, feat_bed

  def step(self, dp, tp, state, tok_b):
    del tp
    cache, logits_bv = self._feed(dp, state.replace(n_spec=jnp.zeros((), jnp.int32)),
                                  tok_b[:, None], jnp.ones_like(tok_b))
    return state.replace(cache=cache, n_spec=state.n_spec + 1), logits_bv

  def commit(self, dp, tp, state, next_bw, feat_bwd, n_keep_b):
    del tp, feat_bwd
    cache, logits_bv = self._feed(dp, state, next_bw, n_keep_b)
    return state.replace(cache=cache, n_spec=jnp.zeros((), jnp.int32)), logits_bv
