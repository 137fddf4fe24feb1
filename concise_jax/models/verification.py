"""Multi-token verification forward for speculative decoding (Leviathan et al., arXiv 2211.17192).

The target scores a block of W tokens per row (the pending token plus W - 1 drafted ones, a
chain) in one forward over its KV cache, and returns logits and the final-normed features (what
an EAGLE draft head consumes, arXiv 2401.15077).

Per-row write offsets. After acceptance the rows are ragged: row b keeps `n_b` of the W tokens.
The cache's shared `end` becomes a per-row `end` [B]: each row writes its block at its own
offset, the first `n_b` written slots are marked valid and `end` advances by `n_b`, so rejected
slots are simply overwritten by the next block (no compaction). Keys are cached after RoPE with
their true positions, so slot order never matters to attention, only `valid_bs`.
A cache from `transformer.prefill` (scalar `end`) is accepted everywhere: it is broadcast.
"""
import jax
import jax.numpy as jnp

from concise_jax.models import layers as L
from concise_jax.models import transformer
from concise_jax.models.config import ModelConfig

_NEG_INF = -1e30


def row_ends(cache: transformer.KVCache) -> jax.Array:
  """Per-row write offsets [B] int32 (a scalar `end` from `prefill` is broadcast)."""
  return jnp.broadcast_to(cache.end, cache.pos_b.shape).astype(jnp.int32)


def prefill_with_features(cfg: ModelConfig, params: dict, tokens_bs: jax.Array,
                          mask_bs: jax.Array, max_len: int):
  """`transformer.prefill` that also returns the final-normed features of every prompt position.

  Returns:
    (last-position logits [B, V] f32, features [B, S, D], cache of `max_len` slots with a
    per-row `end` [B]).
  """
  b, s = tokens_bs.shape
  hidden_bsd, aux = transformer.forward(cfg, params, tokens_bs, mask_bs=mask_bs,
                                        return_logits=False, return_kv=True)
  pad = ((0, 0), (0, 0), (0, max_len - s), (0, 0))
  to_layers = lambda x_lbskh: tuple(jnp.pad(x.transpose(0, 2, 1, 3), pad) for x in x_lbskh)
  k_lbskh, v_lbskh = aux["kv"]
  cache = transformer.KVCache(
      k_bksh=to_layers(k_lbskh), v_bksh=to_layers(v_lbskh),
      valid_bs=jnp.pad(mask_bs > 0, ((0, 0), (0, max_len - s))),
      end=jnp.full((b,), s, jnp.int32), pos_b=jnp.sum(mask_bs > 0, axis=-1).astype(jnp.int32))
  logits_bv = transformer.output_logits(cfg, params, hidden_bsd[:, -1:])[:, 0]
  return logits_bv, hidden_bsd, cache


def block_attention(q_bwnh, k_new_bwkh, v_new_bwkh, k_cache_bksh, v_cache_bksh, valid_bs,
                    block_mask_ww, cfg: ModelConfig) -> jax.Array:
  """Attention of a W-token block over the cache plus the block itself (no cache concatenation).

  Args:
    q_bwnh: block queries [B, W, N, H]; k_new_bwkh, v_new_bwkh: block keys/values [B, W, K, H].
    k_cache_bksh, v_cache_bksh: the cache [B, K, S, H]; valid_bs: [B, S] attendable slots.
    block_mask_ww: [W, W] bool, True where block query i may attend block key j (causal for a
      chain; ancestor mask for a tree), or [B, W, W] when every row has its own tree.
  Returns:
    [B, W, N, H].
  """
  b, w, n, h = q_bwnh.shape
  k = cfg.n_kv_heads
  q_bkgwh = q_bwnh.reshape(b, w, k, n // k, h).transpose(0, 2, 3, 1, 4)
  cached = jnp.einsum("bkgwh,bksh->bkgws", q_bkgwh, k_cache_bksh).astype(jnp.float32) * h**-0.5
  cached = jnp.where(valid_bs[:, None, None, None, :], cached, _NEG_INF)
  own = jnp.einsum("bkgwh,bukh->bkgwu", q_bkgwh, k_new_bwkh).astype(jnp.float32) * h**-0.5
  if block_mask_ww.ndim == 3:   # per-row tree masks: broadcast over the kv-head and group axes
    block_mask_ww = block_mask_ww[:, None, None]
  own = jnp.where(block_mask_ww, own, _NEG_INF)
  probs = jax.nn.softmax(jnp.concatenate([cached, own], axis=-1), axis=-1)
  probs = probs.astype(v_new_bwkh.dtype)
  s = k_cache_bksh.shape[2]
  out = (jnp.einsum("bkgws,bksh->bkgwh", probs[..., :s], v_cache_bksh)
         + jnp.einsum("bkgwu,bukh->bkgwh", probs[..., s:], v_new_bwkh))
  return out.transpose(0, 3, 1, 2, 4).reshape(b, w, n, h)


def write_rows(buf_bksh: jax.Array, new_bkwh: jax.Array, end_b: jax.Array) -> jax.Array:
  """Writes each row's [K, W, H] block at its own slot offset `end_b[b]` (a batched scatter)."""
  put = lambda c, u, e: jax.lax.dynamic_update_slice(c, u, (0, e, 0))
  return jax.vmap(put)(buf_bksh, new_bkwh, end_b)


def mark_written(valid_bs: jax.Array, end_b: jax.Array, width: int,
                 keep_bw: jax.Array) -> jax.Array:
  """valid_bs with slots [end_b, end_b + width) set to `keep_bw` (others unchanged)."""
  idx_s = jnp.arange(valid_bs.shape[1])
  rel_bs = idx_s[None, :] - end_b[:, None]
  inside_bs = (rel_bs >= 0) & (rel_bs < width)
  keep_bs = jnp.take_along_axis(keep_bw, jnp.clip(rel_bs, 0, width - 1), axis=1)
  return jnp.where(inside_bs, keep_bs, valid_bs)


def _verify_block(cfg, p, x_bwd, cos, sin, k_cache, v_cache, valid_bs, block_mask_ww, end_b,
                  write_first):
  """One layer over the block; returns (x, the cache buffers with the block's keys/values written).

  The block's own slots are not yet valid (`commit` marks them), so attention never reads them
  from the cache and the write may come before or after it with bit-identical outputs. Writing
  first avoids XLA:CPU's per-step copy of every cache buffer at large batch, as in
  `transformer._decode_block`.
  """
  h = L.rms_norm(x_bwd, p["attn_norm"], cfg)
  q, k, v = L.qkv_projection(h, p, cfg, cos, sin)
  write = lambda: (write_rows(k_cache, k.transpose(0, 2, 1, 3), end_b),
                   write_rows(v_cache, v.transpose(0, 2, 1, 3), end_b))
  if write_first:
    k_cache, v_cache = write()
  attn = block_attention(q, k, v, k_cache, v_cache, valid_bs, block_mask_ww, cfg)
  if not write_first:
    k_cache, v_cache = write()
  x_bwd = x_bwd + L.linear(attn, p, "w_o", "bsnh,nhd->bsd")
  x_bwd = x_bwd + L.gated_mlp(L.rms_norm(x_bwd, p["mlp_norm"], cfg), p, cfg)
  return x_bwd, (k_cache, v_cache)


def verify(cfg: ModelConfig, params: dict, tokens_bw: jax.Array, cache: transformer.KVCache,
           *, depth_w: jax.Array | None = None, block_mask_ww: jax.Array | None = None,
           return_logits: bool = True, write_first: bool | None = None):
  """Scores a block of W tokens per row in one forward over the cache (chain by default).

  Writes the block's keys/values at each row's offset `end[b]` but marks nothing valid and
  advances nothing: call `commit` with the accepted counts afterwards.

  Args:
    tokens_bw: [B, W] int32; column 0 is the pending (already chosen, not yet cached) token.
    cache: cache with per-row `end` (from `prefill_with_features` or `commit`).
    depth_w: [W] position offset of each block token (default arange(W): a chain), or [B, W]
      per row (a tree's node depths).
    block_mask_ww: [W, W] bool attention inside the block (default causal: a chain), or
      [B, W, W] per row (each row's ancestor mask).
    return_logits: also return logits [B, W, V] f32 (else None).
    write_first: write the block into the cache before attention (same outputs; fewer cache
      copies on XLA:CPU); default from the batch, as `transformer.WRITE_FIRST_MIN_BATCH`.
  Returns:
    (logits [B, W, V] or None, final-normed features [B, W, D], cache with the block written).
  """
  b, w = tokens_bw.shape
  params = transformer.unstack_layers(params)
  depth_w = jnp.arange(w) if depth_w is None else depth_w
  block_mask_ww = jnp.tril(jnp.ones((w, w), bool)) if block_mask_ww is None else block_mask_ww
  end_b = row_ends(cache)
  depth_bw = depth_w if depth_w.ndim == 2 else depth_w[None, :]
  cos, sin = L.rope_cos_sin(cache.pos_b[:, None] + depth_bw, L.rope_inv_freq(cfg))
  x_bwd = transformer._embed(cfg, params, tokens_bw)  # pylint: disable=protected-access
  if write_first is None:
    write_first = b >= transformer.WRITE_FIRST_MIN_BATCH
  new_k, new_v = [], []
  for i, p in enumerate(params["layers"]):
    p = transformer._cast(cfg, p)  # pylint: disable=protected-access
    x_bwd, (k_bksh, v_bksh) = _verify_block(cfg, p, x_bwd, cos, sin, cache.k_bksh[i],
                                            cache.v_bksh[i], cache.valid_bs, block_mask_ww,
                                            end_b, write_first)
    new_k.append(k_bksh)
    new_v.append(v_bksh)
  feat_bwd = L.rms_norm(x_bwd, params["final_norm"], cfg)
  logits = transformer.output_logits(cfg, params, feat_bwd) if return_logits else None
  return logits, feat_bwd, cache.replace(k_bksh=tuple(new_k), v_bksh=tuple(new_v), end=end_b)


def commit(cache: transformer.KVCache, width: int, n_keep_b: jax.Array) -> transformer.KVCache:
  """Keeps the first `n_keep_b[b]` of the W slots `verify` wrote per row; rolls back the rest.

  The kept slots become valid, the rest invalid (and are overwritten by the next block); the
  write offset and the RoPE position advance by the kept count.
  """
  end_b = row_ends(cache)
  keep_bw = jnp.arange(width)[None, :] < n_keep_b[:, None]
  return cache.replace(valid_bs=mark_written(cache.valid_bs, end_b, width, keep_bw),
                       end=end_b + n_keep_b, pos_b=cache.pos_b + n_keep_b)
