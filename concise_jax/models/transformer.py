"""The decoder-only transformer: Flax NNX parameter declaration plus a pure functional forward.

The NNX module declares parameters (initialisers and logical sharding names); every computation
is a pure function of `(cfg, params, ...)` where `params` is the plain nested dict described in
`config.py`. RL code differentiates, shards, checkpoints and LoRA-wraps that dict directly.
"""
import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from concise_jax.models import layers as L
from concise_jax.models.config import ModelConfig


def _param(init, key, shape, names, dtype):
  return nnx.Param(init(key, shape, dtype), out_sharding=names, eager_sharding=False)


class DecoderLayers(nnx.Module):
  """All L decoder blocks, stacked on a leading "layers" axis (one lax.scan runs them)."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    nl, d, n, k, h, f = (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                         cfg.mlp_dim)
    w = nnx.initializers.normal(0.02)
    norm_init = nnx.initializers.zeros if cfg.norm_plus_one else nnx.initializers.ones
    dt = jnp.dtype(cfg.param_dtype)
    self.attn_norm = _param(norm_init, rngs.params(), (nl, d), ("layers", "embed"), dt)
    self.w_q = _param(w, rngs.params(), (nl, d, n, h), ("layers", "embed", "heads", "head_dim"), dt)
    self.w_k = _param(w, rngs.params(), (nl, d, k, h),
                      ("layers", "embed", "kv_heads", "head_dim"), dt)
    self.w_v = _param(w, rngs.params(), (nl, d, k, h),
                      ("layers", "embed", "kv_heads", "head_dim"), dt)
    if cfg.qkv_bias:
      z = nnx.initializers.zeros
      self.b_q = _param(z, rngs.params(), (nl, n, h), ("layers", "heads", "head_dim"), dt)
      self.b_k = _param(z, rngs.params(), (nl, k, h), ("layers", "kv_heads", "head_dim"), dt)
      self.b_v = _param(z, rngs.params(), (nl, k, h), ("layers", "kv_heads", "head_dim"), dt)
    self.w_o = _param(w, rngs.params(), (nl, n, h, d), ("layers", "heads", "head_dim", "embed"), dt)
    self.mlp_norm = _param(norm_init, rngs.params(), (nl, d), ("layers", "embed"), dt)
    self.w_gate = _param(w, rngs.params(), (nl, d, f), ("layers", "embed", "mlp"), dt)
    self.w_up = _param(w, rngs.params(), (nl, d, f), ("layers", "embed", "mlp"), dt)
    self.w_down = _param(w, rngs.params(), (nl, f, d), ("layers", "mlp", "embed"), dt)


class Transformer(nnx.Module):
  """Llama / Qwen2 / Gemma-style decoder. Call it, or use `forward` on its params dict."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dt = jnp.dtype(cfg.param_dtype)
    w = nnx.initializers.normal(0.02)
    self.embed = _param(w, rngs.params(), (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), dt)
    if not cfg.tie_embeddings:
      self.lm_head = _param(w, rngs.params(), (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), dt)
    norm_init = nnx.initializers.zeros if cfg.norm_plus_one else nnx.initializers.ones
    self.final_norm = _param(norm_init, rngs.params(), (cfg.d_model,), ("embed",), dt)
    self.layers = DecoderLayers(cfg, rngs=rngs)

  def __call__(self, tokens_bs, **kwargs):
    return forward(self.cfg, nnx.to_pure_dict(nnx.state(self, nnx.Param)), tokens_bs, **kwargs)


def init_params(cfg: ModelConfig, key: jax.Array) -> dict:
  """Random parameters as the plain nested dict every other module consumes."""
  return nnx.to_pure_dict(nnx.state(Transformer(cfg, rngs=nnx.Rngs(params=key)), nnx.Param))


def param_axes(cfg: ModelConfig) -> dict:
  """Logical axis names of every parameter (same tree as `init_params`), for sharding rules."""
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  state = nnx.state(abstract, nnx.Param)
  return nnx.to_pure_dict(jax.tree.map(lambda v: tuple(v.get_metadata()["out_sharding"]), state,
                                       is_leaf=lambda x: isinstance(x, nnx.Variable)))


# Position rules: how many of the last positions of each forward call get the vector. ASC
# (arXiv 2507.04742) steers only the last one, i.e. the last prompt token at prefill and every
# generated token during KV-cached decoding; "all" steers every position of every call.
STEER_ALL = 2**30
POSITION_RULES = {"last": 1, "all": STEER_ALL}


@flax.struct.dataclass
class Steering:
  """Adds `scale * vector_d` to the residual stream after decoder layer `layer` (ASC).

  Every field is an array, so changing the vector, layer, strength or position rule does not
  recompile. Fields may be per row ([B] / [B, D]) so one batch can sweep strengths or layers;
  per-row fields must match the forward's batch (the sampler prefills P prompts and decodes
  P * G rows, so per-row steering needs num_samples == 1: repeat prompts instead).

  `last_n` is the position rule: only the last `last_n` positions of each forward call are
  steered (`POSITION_RULES`: "last" = 1, ASC's default; "all" = every position). None keeps
  the original behaviour of steering every position. A decode step has one position, which is
  always steered.
  """
  layer: jax.Array   # [] or [B] int32
  vector_d: jax.Array  # [D] or [B, D]
  scale: jax.Array   # [] or [B] float32 (0 = unsteered, bit for bit)
  last_n: jax.Array | None = None  # [] int32; None = every position

  @classmethod
  def create(cls, vector_d, layer, scale, rule: str = "last") -> "Steering":
    """Arrays from Python values; `rule` names a `POSITION_RULES` entry."""
    if rule not in POSITION_RULES:
      raise KeyError(f"position rule {rule!r}; known: {sorted(POSITION_RULES)}")
    return cls(layer=jnp.asarray(layer, jnp.int32), vector_d=jnp.asarray(vector_d, jnp.float32),
               scale=jnp.asarray(scale, jnp.float32),
               last_n=jnp.asarray(POSITION_RULES[rule], jnp.int32))


def _embed(cfg, params, tokens_bs):
  x = params["embed"][tokens_bs].astype(cfg.compute_dtype)
  if cfg.embed_scale:
    x = x * jnp.asarray(cfg.d_model**0.5, cfg.compute_dtype)
  return x


def output_logits(cfg: ModelConfig, params: dict, hidden_bsd: jax.Array) -> jax.Array:
  """Final-norm'd hidden states → vocabulary logits (tied or separate head), fp32."""
  w_dv = params["embed"].T if cfg.tie_embeddings else params["lm_head"]
  return jnp.einsum("bsd,dv->bsv", hidden_bsd, w_dv.astype(hidden_bsd.dtype)).astype(jnp.float32)


def _cast(cfg, tree):
  return jax.tree.map(lambda a: a.astype(cfg.compute_dtype), tree)


def _block(cfg, p, x_bsd, cos, sin, k_btkh_fn, mask_bst):
  """One pre-norm decoder block. `k_btkh_fn(k, v)` returns the keys/values to attend over."""
  h = L.rms_norm(x_bsd, p["attn_norm"], cfg)
  q, k, v = L.qkv_projection(h, p, cfg, cos, sin)
  keys, values = k_btkh_fn(k, v)
  attn = L.attention(q, keys, values, mask_bst, cfg)
  x_bsd = x_bsd + L.linear(attn, p, "w_o", "bsnh,nhd->bsd")
  x_bsd = x_bsd + L.gated_mlp(L.rms_norm(x_bsd, p["mlp_norm"], cfg), p, cfg)
  return x_bsd, (k, v)


def _rows(x, batch: int, ndim: int, name: str):
  """A per-row steering field ([B, ...]) checked against the batch; shared ones pass through."""
  if x.ndim == ndim:
    return x
  if x.shape[0] != batch:
    raise ValueError(f"per-row steering {name} has {x.shape[0]} rows, the forward has {batch} "
                     "(the sampler prefills prompts, not samples: use num_samples=1)")
  return x


def _steer(x_bsd, layer_index, steering):
  """Residual stream after layer `layer_index`, steered where the layer and position rule say.

  `x_bsd` is [B, S, D] (forward, prefill) or [B, D] (one decode position, always steered).
  """
  if steering is None:
    return x_bsd
  b = x_bsd.shape[0]
  layer = _rows(steering.layer, b, 0, "layer")
  scale = _rows(steering.scale, b, 0, "scale")
  vector = _rows(steering.vector_d, b, 1, "vector")
  gate = jnp.where(layer_index == layer, scale, 0.0)                       # [] or [B]
  add_bd = jnp.broadcast_to(gate[..., None] * vector, (b, x_bsd.shape[-1]))
  if x_bsd.ndim == 2:
    return x_bsd + add_bd.astype(x_bsd.dtype)
  add_bsd = add_bd[:, None, :]
  if steering.last_n is not None:
    s = x_bsd.shape[1]
    steered_s = jnp.arange(s) >= s - steering.last_n
    add_bsd = jnp.where(steered_s[None, :, None], add_bsd, 0.0)
  return x_bsd + add_bsd.astype(x_bsd.dtype)


def remat_layer(cfg: ModelConfig, body):
  """`body` (one scanned layer) under the config's remat policy (`config.REMAT_POLICIES`).

  prevent_cse=False: inside a scan the rematerialised layer cannot be merged with the forward.
  """
  policy = cfg.remat_policy
  if policy == "none":
    return body
  if policy == "dots":
    return jax.checkpoint(body, prevent_cse=False,
                          policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
  return jax.checkpoint(body, prevent_cse=False)


def positions_from_mask(mask_bs: jax.Array) -> jax.Array:
  """Left-padded rows: the first real token gets position 0; pads get 0 too (they are masked)."""
  return jnp.maximum(jnp.cumsum(mask_bs.astype(jnp.int32), axis=-1) - 1, 0)


def forward(cfg: ModelConfig, params: dict, tokens_bs: jax.Array, *,
            mask_bs: jax.Array | None = None, positions_bs: jax.Array | None = None,
            hidden_layers: tuple[int, ...] = (), steering: Steering | None = None,
            return_logits: bool = True, return_kv: bool = False):
  """Full-sequence causal forward.

  Args:
    tokens_bs: [B, S] int32 token ids.
    mask_bs: [B, S] 1 for real tokens, 0 for padding (keys that are padding are never attended).
    positions_bs: [B, S] RoPE positions; default derived from `mask_bs` (left padding safe).
    hidden_layers: residual stream after these layers is returned in aux["hidden"] [len, B, S, D].
    steering: optional vector added to the residual stream after one layer.
    return_logits: False returns the final-normed hidden states [B, S, D] instead (the RL loss
      computes sampled-token log-probs from them in chunks, without [B, S, V] logits).
    return_kv: also return per-layer keys/values [L, B, S, K, H] (used by prefill).
  Returns:
    (logits_bsv or hidden_bsd, aux dict).
  """
  b, s = tokens_bs.shape
  if mask_bs is None:
    mask_bs = jnp.ones((b, s), jnp.int32)
  if positions_bs is None:
    positions_bs = positions_from_mask(mask_bs)
  causal_ss = jnp.tril(jnp.ones((s, s), bool))
  mask_bst = causal_ss[None] & (mask_bs[:, None, :] > 0)
  cos, sin = L.rope_cos_sin(positions_bs, L.rope_inv_freq(cfg))

  def body(x_bsd, xs):
    p, i = xs
    x_bsd, kv = _block(cfg, _cast(cfg, p), x_bsd, cos, sin, lambda k, v: (k, v), mask_bst)
    x_bsd = _steer(x_bsd, i, steering)
    return x_bsd, (x_bsd if hidden_layers else None, kv if return_kv else None)

  body = remat_layer(cfg, body)
  x_bsd = _embed(cfg, params, tokens_bs)
  x_bsd, (hidden_lbsd, kv) = jax.lax.scan(
      body, x_bsd, (params["layers"], jnp.arange(cfg.n_layers)))
  aux = {}
  if hidden_layers:
    aux["hidden"] = hidden_lbsd[jnp.asarray(hidden_layers)]
  if return_kv:
    aux["kv"] = kv
  x_bsd = L.rms_norm(x_bsd, params["final_norm"], cfg)
  return (output_logits(cfg, params, x_bsd) if return_logits else x_bsd), aux


# --------------------------------------------------------------------------- KV-cache decoding


@flax.struct.dataclass
class KVCache:
  """Preallocated keys/values for incremental decoding; rows are left-padded prompts.

  One [B, K, S, H] buffer per layer (a tuple, not a stacked array): the decode loop updates each
  in place and attention reads it without the per-layer slice copy a stacked cache would need.
  [B, K, S, H] keeps the attention einsums transpose-free. Left padding makes the write slot the
  same for every row, so one `dynamic_update_slice` per layer per step updates the whole batch.
  """
  k_bksh: tuple[jax.Array, ...]   # L x [B, K, S, H]
  v_bksh: tuple[jax.Array, ...]   # L x [B, K, S, H]
  valid_bs: jax.Array  # [B, S] bool: slot holds a real token
  end: jax.Array       # [] int32: next slot to write
  pos_b: jax.Array     # [B] int32: RoPE position of the next token of each row

  def map_batch(self, fn) -> "KVCache":
    """Applies `fn(x, axis)` to every batch-indexed leaf (e.g. repeat rows for G samples)."""
    return self.replace(k_bksh=tuple(fn(k, 0) for k in self.k_bksh),
                        v_bksh=tuple(fn(v, 0) for v in self.v_bksh),
                        valid_bs=fn(self.valid_bs, 0), pos_b=fn(self.pos_b, 0))


def init_cache(cfg: ModelConfig, batch: int, max_len: int) -> KVCache:
  shape = (batch, cfg.n_kv_heads, max_len, cfg.head_dim)
  zeros = lambda: tuple(jnp.zeros(shape, cfg.compute_dtype) for _ in range(cfg.n_layers))
  return KVCache(k_bksh=zeros(), v_bksh=zeros(), valid_bs=jnp.zeros((batch, max_len), bool),
                 end=jnp.zeros((), jnp.int32), pos_b=jnp.zeros((batch,), jnp.int32))


def prefill(cfg: ModelConfig, params: dict, tokens_bs: jax.Array, mask_bs: jax.Array,
            max_len: int, steering: Steering | None = None) -> tuple[jax.Array, KVCache]:
  """Runs left-padded prompts [B, S] and returns (last-position logits [B, V], cache of max_len)."""
  b, s = tokens_bs.shape
  hidden_bsd, aux = forward(cfg, params, tokens_bs, mask_bs=mask_bs, steering=steering,
                            return_logits=False, return_kv=True)
  pad = ((0, 0), (0, 0), (0, max_len - s), (0, 0))
  to_layers = lambda x_lbskh: tuple(jnp.pad(x.transpose(0, 2, 1, 3), pad) for x in x_lbskh)
  k_lbskh, v_lbskh = aux["kv"]
  cache = KVCache(k_bksh=to_layers(k_lbskh), v_bksh=to_layers(v_lbskh),
                  valid_bs=jnp.pad(mask_bs > 0, ((0, 0), (0, max_len - s))),
                  end=jnp.asarray(s, jnp.int32),
                  pos_b=jnp.sum(mask_bs > 0, axis=-1).astype(jnp.int32))
  return output_logits(cfg, params, hidden_bsd[:, -1:])[:, 0], cache


def unstack_layers(params: dict) -> dict:
  """params with "layers" as a list of per-layer dicts (do it once, outside a decode loop).

  Decoding one token is small-matmul bound on CPU; slicing stacked weights inside the loop copies
  all of them every step (~20% of decode time at batch 32).
  """
  layers = params["layers"]
  if isinstance(layers, (list, tuple)):
    return params
  n = jax.tree.leaves(layers)[0].shape[0]
  return {**params, "layers": [jax.tree.map(lambda a, i=i: a[i], layers) for i in range(n)]}


# Batch from which a decode step writes the new key/value before attention (see `_decode_block`).
WRITE_FIRST_MIN_BATCH = 32


def _decode_block(cfg, p, x_bd, cos, sin, k_cache_bksh, v_cache_bksh, valid_bs, end):
  """`_block` for one new token per row; returns the cache buffers with its key/value written.

  Attention reads the cache with the new slot masked by `valid_bs` and adds the new token's score
  apart, so writing before or after attention gives bit-identical fp32 outputs. The order only
  changes XLA:CPU's copy insertion in the decode loop (SmolLM2-135M, experiments/
  profile_decode.py): writing first removes its 120 per-step cache-buffer copies at batch 32/64
  (1.37x / 1.23-1.84x per step), but doubles them at batch 1 (0.84x) and in the 2-layer test
  model, so small batches keep the write after attention; re-measure for other models.
  """
  h = L.rms_norm(x_bd[:, None], p["attn_norm"], cfg)
  q, k, v = L.qkv_projection(h, p, cfg, cos, sin)
  k_bkh, v_bkh = k[:, 0], v[:, 0]
  slot = (0, 0, end, 0)
  write = lambda cache_bksh, new_bkh: jax.lax.dynamic_update_slice(cache_bksh,
                                                                   new_bkh[:, :, None], slot)
  write_first = x_bd.shape[0] >= WRITE_FIRST_MIN_BATCH
  if write_first:
    k_cache_bksh, v_cache_bksh = write(k_cache_bksh, k_bkh), write(v_cache_bksh, v_bkh)
  attn_bnh = L.decode_attention(q[:, 0], k_bkh, v_bkh, k_cache_bksh, v_cache_bksh, valid_bs, cfg)
  if not write_first:
    k_cache_bksh, v_cache_bksh = write(k_cache_bksh, k_bkh), write(v_cache_bksh, v_bkh)
  x_bd = x_bd + jnp.einsum("bnh,nhd->bd", attn_bnh, p["w_o"])
  x_bd = x_bd + L.gated_mlp(L.rms_norm(x_bd[:, None], p["mlp_norm"], cfg), p, cfg)[:, 0]
  return x_bd, (k_cache_bksh, v_cache_bksh)


def decode_step(cfg: ModelConfig, params: dict, tokens_b: jax.Array, cache: KVCache,
                steering: Steering | None = None) -> tuple[jax.Array, KVCache]:
  """Feeds one token per row; returns next-token logits [B, V] and the updated cache.

  Layers are unrolled in Python (per-layer weights from `unstack_layers`, per-layer cache
  buffers), so nothing is sliced or copied per step; each layer's new key/value is written into
  its buffer in place.
  """
  params = unstack_layers(params)
  cos, sin = L.rope_cos_sin(cache.pos_b[:, None], L.rope_inv_freq(cfg))
  x_bd = _embed(cfg, params, tokens_b)
  new_k, new_v = [], []
  for i, p in enumerate(params["layers"]):
    x_bd, (k_bksh, v_bksh) = _decode_block(cfg, _cast(cfg, p), x_bd, cos, sin, cache.k_bksh[i],
                                           cache.v_bksh[i], cache.valid_bs, cache.end)
    x_bd = _steer(x_bd, i, steering)
    new_k.append(k_bksh)
    new_v.append(v_bksh)
  valid_b1 = jnp.ones_like(cache.valid_bs[:, :1])
  cache = cache.replace(
      k_bksh=tuple(new_k), v_bksh=tuple(new_v),
      valid_bs=jax.lax.dynamic_update_slice(cache.valid_bs, valid_b1, (0, cache.end)),
      end=cache.end + 1, pos_b=cache.pos_b + 1)
  x_bd = L.rms_norm(x_bd, params["final_norm"], cfg)
  return output_logits(cfg, params, x_bd[:, None])[:, 0], cache
