"""Stateless building blocks of the decoder: RMSNorm, RoPE, grouped-query attention, gated MLP."""
import jax
import jax.numpy as jnp

from concise_jax.models.config import ModelConfig

_NEG_INF = -1e30  # finite, so fully masked rows give a uniform softmax instead of NaN.


def rms_norm(x_bsd: jax.Array, w_d: jax.Array, cfg: ModelConfig) -> jax.Array:
  """RMSNorm computed in fp32 (bf16 variance underflows); Gemma stores the scale as (1 + w)."""
  x = x_bsd.astype(jnp.float32)
  x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + cfg.rms_eps)
  scale = 1.0 + w_d if cfg.norm_plus_one else w_d
  return (x * scale.astype(jnp.float32)).astype(x_bsd.dtype)


def rope_inv_freq(cfg: ModelConfig) -> jax.Array:
  """Inverse frequencies [H/2], with optional linear or llama3-style scaling from the config."""
  half = cfg.head_dim // 2
  inv_freq = 1.0 / (cfg.rope_theta ** (jnp.arange(half, dtype=jnp.float32) * 2 / cfg.head_dim))
  scaling = cfg.rope_scaling
  if scaling is None:
    return inv_freq
  if scaling[0] == "linear":
    return inv_freq / scaling[1]
  if scaling[0] == "llama3":
    _, factor, low_ff, high_ff, orig_max = scaling
    wavelen = 2 * jnp.pi / inv_freq
    low_wavelen, high_wavelen = orig_max / low_ff, orig_max / high_ff
    smooth = (orig_max / wavelen - low_ff) / (high_ff - low_ff)
    smoothed = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    return jnp.where(wavelen > low_wavelen, inv_freq / factor,
                     jnp.where(wavelen < high_wavelen, inv_freq, smoothed))
  raise ValueError(f"unknown rope_scaling type {scaling[0]!r}; valid choices: linear, llama3")


def rope_cos_sin(positions_bs: jax.Array, inv_freq_h: jax.Array) -> tuple[jax.Array, jax.Array]:
  """cos/sin tables [B, S, 1, H/2] for the given absolute positions."""
  angles_bsh = positions_bs[..., None].astype(jnp.float32) * inv_freq_h
  return jnp.cos(angles_bsh)[:, :, None, :], jnp.sin(angles_bsh)[:, :, None, :]


def apply_rope(x_bsnh: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotate-half RoPE (Hugging Face convention): pairs are (i, i + H/2), not (2i, 2i+1)."""
  half = x_bsnh.shape[-1] // 2
  x1, x2 = x_bsnh[..., :half].astype(jnp.float32), x_bsnh[..., half:].astype(jnp.float32)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_bsnh.dtype)


def linear(x, p: dict, name: str, spec: str):
  """`einsum(spec, x, p[name])`, plus a low-rank side branch if `p["lora"]` adapts `name`.

  The branch x·A·B' (A [*in, r], B' = (alpha/r)·B [r, *out]) gives the same output as the
  merged weight W + A·B', but its backward never forms the full-size gradient of W — only
  the rank-r ones — so LoRA training skips a quarter of the full fine-tuning FLOPs.
  """
  y = jnp.einsum(spec, x, p[name])
  adapter = p.get("lora", {}).get(name)
  if adapter is None:
    return y
  x_spec, rest = spec.split(",")
  w_spec, out_spec = rest.split("->")
  n_in = adapter["a"].ndim - 1
  contracted = w_spec[:n_in]
  mid = "".join(c for c in x_spec if c not in contracted) + "z"
  xa = jnp.einsum(f"{x_spec},{contracted}z->{mid}", x, adapter["a"])
  return y + jnp.einsum(f"{mid},z{w_spec[n_in:]}->{out_spec}", xa, adapter["b"])


def qkv_projection(x_bsd, p, cfg: ModelConfig, cos, sin):
  """Projects to rotated queries [B,S,N,H] and keys/values [B,S,K,H]."""
  q = linear(x_bsd, p, "w_q", "bsd,dnh->bsnh")
  k = linear(x_bsd, p, "w_k", "bsd,dkh->bskh")
  v = linear(x_bsd, p, "w_v", "bsd,dkh->bskh")
  if cfg.qkv_bias:
    q, k, v = q + p["b_q"], k + p["b_k"], v + p["b_v"]
  return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def attention(q_bsnh, k_btkh, v_btkh, mask_bst, cfg: ModelConfig) -> jax.Array:
  """Grouped-query attention: query head n reads kv head n // (N / K), as HF's repeat_kv does.

  Args:
    q_bsnh: queries [B, S, N, H]. k_btkh, v_btkh: keys/values [B, T, K, H].
    mask_bst: [B, S, T] bool, True where query s may attend key t.
  Returns:
    [B, S, N, H] attention output.
  """
  b, s, n, h = q_bsnh.shape
  k = cfg.n_kv_heads
  q_bskgh = q_bsnh.reshape(b, s, k, n // k, h)
  scores = jnp.einsum("bskgh,btkh->bkgst", q_bskgh, k_btkh).astype(jnp.float32) * h**-0.5
  scores = jnp.where(mask_bst[:, None, None], scores, _NEG_INF)
  probs = jax.nn.softmax(scores, axis=-1).astype(v_btkh.dtype)
  out = jnp.einsum("bkgst,btkh->bskgh", probs, v_btkh)
  return out.reshape(b, s, n, h)


def decode_attention(q_bnh, k_new_bkh, v_new_bkh, k_cache_bksh, v_cache_bksh, valid_bs,
                     cfg: ModelConfig) -> jax.Array:
  """One-token attention over the cache plus the token itself, without concatenating the cache.

  The cache is laid out [B, K, S, H] so both einsums are plain batched matmuls (batch = B, K);
  the [B, S, K, H] layout costs a transpose per layer per step, ~4x slower on XLA:CPU.
  Returns [B, N, H].
  """
  b, n, h = q_bnh.shape
  k = cfg.n_kv_heads
  q_bkgh = q_bnh.reshape(b, k, n // k, h)
  cached = jnp.einsum("bkgh,bksh->bkgs", q_bkgh, k_cache_bksh).astype(jnp.float32) * h**-0.5
  cached = jnp.where(valid_bs[:, None, None, :], cached, _NEG_INF)
  own = jnp.einsum("bkgh,bkh->bkg", q_bkgh, k_new_bkh).astype(jnp.float32)[..., None] * h**-0.5
  probs = jax.nn.softmax(jnp.concatenate([cached, own], axis=-1), axis=-1).astype(v_new_bkh.dtype)
  out = (jnp.einsum("bkgs,bksh->bkgh", probs[..., :-1], v_cache_bksh)
         + probs[..., -1:] * v_new_bkh[:, :, None, :])
  return out.reshape(b, n, h)


def gated_mlp(x_bsd, p, cfg: ModelConfig) -> jax.Array:
  """SwiGLU (Llama/Qwen) or GeGLU (Gemma) feed-forward."""
  gate = linear(x_bsd, p, "w_gate", "bsd,df->bsf")
  up = linear(x_bsd, p, "w_up", "bsd,df->bsf")
  if cfg.activation == "silu":
    act = jax.nn.silu(gate)
  elif cfg.activation == "gelu_tanh":
    act = jax.nn.gelu(gate, approximate=True)
  else:
    raise ValueError(f"unknown activation {cfg.activation!r}; valid choices: silu, gelu_tanh")
  return linear(act * up, p, "w_down", "bsf,fd->bsd")
