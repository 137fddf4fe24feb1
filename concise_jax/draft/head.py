"""The EAGLE draft head (arXiv 2401.15077): feature-level autoregression on top of the target.

    f̂_{t+1} = Layer(fc([e(x_{t+1}); f_t]))          logits_{t+2} = f̂_{t+1} · E[vocab]^T

`fc` is a Linear(2D → D) with bias over [token embedding; feature], `Layer` is one decoder block
of the target's type *without* its input RMSNorm, and the output goes straight to the target's
frozen (tied) LM head, with no norm in between. The feature f_t is the target's final-normed
hidden state (`forward(..., return_logits=False)`).

Reduced draft vocabulary (EAGLE-3, arXiv 2503.01840): the head can score only the `Vd` most
frequent target tokens (`vocab_ids` [Vd] → target ids); on SmolLM2-135M the tied LM head is 21%
of the parameters, so this is what makes a draft step cheap. The same trained head serves any
`vocab_ids`: its q over the subset is the full-vocab softmax renormalised to the subset.

Head params: {"fc_w": [2D, D], "fc_b": [D], "layer": {w_q, w_k, w_v, w_o, mlp_norm, w_gate,
w_up, w_down}} with the target's per-layer shapes (no "layers" axis, no attn_norm).
"""
import jax
import jax.numpy as jnp

from concise_jax.models import layers as L
from concise_jax.models import transformer
from concise_jax.models import verification as V
from concise_jax.models.config import ModelConfig

_LAYER_KEYS = ("w_q", "w_k", "w_v", "w_o", "mlp_norm", "w_gate", "w_up", "w_down")


def init_head(cfg: ModelConfig, target_params: dict, key: jax.Array) -> dict:
  """Head that starts as the identity on the feature: f̂_{t+1} = f_t (a "repeat" draft).

  fc = [small noise; I], the block's Q/K/V/gate/up weights are copied from the target's last
  block and its two output projections (w_o, w_down) are zero, so both residual branches start
  silent and training grows them. (A plain copy of the last block, fed un-normalised features
  without its input norm, starts with a draft loss ~10x higher on SmolLM2.)
  """
  last = {k: jnp.asarray(target_params["layers"][k][-1]) for k in _LAYER_KEYS}
  last["w_o"], last["w_down"] = jnp.zeros_like(last["w_o"]), jnp.zeros_like(last["w_down"])
  d = cfg.d_model
  fc_emb = 0.02 * jax.random.normal(key, (d, d), jnp.float32)
  return {"fc_w": jnp.concatenate([fc_emb, jnp.eye(d)], axis=0).astype(cfg.param_dtype),
          "fc_b": jnp.zeros((d,), cfg.param_dtype), "layer": last}


def lm_weights(cfg: ModelConfig, target_params: dict, vocab_ids: jax.Array | None) -> jax.Array:
  """The target's output matrix restricted to the draft vocabulary: [D, Vd]."""
  w_dv = target_params["embed"].T if cfg.tie_embeddings else target_params["lm_head"]
  return w_dv if vocab_ids is None else jnp.take(w_dv, vocab_ids, axis=1)


def fc_input(cfg: ModelConfig, head: dict, target_params: dict, next_tok_bw: jax.Array,
             feat_bwd: jax.Array) -> jax.Array:
  """fc([e(x_{t+1}); f_t]) for every block position: [B, W, D]."""
  emb_bwd = transformer._embed(cfg, target_params, next_tok_bw)  # pylint: disable=protected-access
  x = jnp.concatenate([emb_bwd, feat_bwd.astype(emb_bwd.dtype)], axis=-1)
  return jnp.einsum("bwe,ed->bwd", x, head["fc_w"]) + head["fc_b"]


def _layer(cfg, p, x_bwd, cos, sin, attend):
  """The draft block: attention on the raw fc output (no input norm), then the usual MLP."""
  q, k, v = L.qkv_projection(x_bwd, p, cfg, cos, sin)
  attn = attend(q, k, v)
  x_bwd = x_bwd + jnp.einsum("bsnh,nhd->bsd", attn, p["w_o"])
  x_bwd = x_bwd + L.gated_mlp(L.rms_norm(x_bwd, p["mlp_norm"], cfg), p, cfg)
  return x_bwd, (k, v)


def head_forward(cfg: ModelConfig, head: dict, target_params: dict, next_tok_bt: jax.Array,
                 feat_btd: jax.Array, mask_bt: jax.Array, return_kv: bool = False):
  """Full-sequence (training / prefill) pass: predicted features f̂ [B, T, D] (and keys/values)."""
  t = next_tok_bt.shape[1]
  positions_bt = transformer.positions_from_mask(mask_bt)
  cos, sin = L.rope_cos_sin(positions_bt, L.rope_inv_freq(cfg))
  mask_btt = jnp.tril(jnp.ones((t, t), bool))[None] & (mask_bt[:, None, :] > 0)
  attend = lambda q, k, v: L.attention(q, k, v, mask_btt, cfg)
  x = fc_input(cfg, head, target_params, next_tok_bt, feat_btd)
  out_btd, kv = _layer(cfg, head["layer"], x, cos, sin, attend)
  return (out_btd, kv) if return_kv else out_btd


def head_block(cfg: ModelConfig, head: dict, target_params: dict, next_tok_bw: jax.Array,
               feat_bwd: jax.Array, cache: transformer.KVCache):
  """Cached pass over a W-position block at each row's offset (like `verification.verify`).

  Returns (f̂ [B, W, D], one-layer cache with the block written, nothing marked valid).
  """
  w = next_tok_bw.shape[1]
  end_b = V.row_ends(cache)
  cos, sin = L.rope_cos_sin(cache.pos_b[:, None] + jnp.arange(w)[None], L.rope_inv_freq(cfg))
  causal_ww = jnp.tril(jnp.ones((w, w), bool))
  attend = lambda q, k, v: V.block_attention(q, k, v, cache.k_bksh[0], cache.v_bksh[0],
                                             cache.valid_bs, causal_ww, cfg)
  x = fc_input(cfg, head, target_params, next_tok_bw, feat_bwd)
  out_bwd, (k, v) = _layer(cfg, head["layer"], x, cos, sin, attend)
  cache = cache.replace(k_bksh=(V.write_rows(cache.k_bksh[0], k.transpose(0, 2, 1, 3), end_b),),
                        v_bksh=(V.write_rows(cache.v_bksh[0], v.transpose(0, 2, 1, 3), end_b),),
                        end=end_b)
  return out_bwd, cache


def head_prefill(cfg: ModelConfig, head: dict, target_params: dict, next_tok_bs: jax.Array,
                 feat_bsd: jax.Array, mask_bs: jax.Array, max_len: int):
  """Runs the head over a left-padded prompt; returns (last f̂ [B, D], one-layer cache)."""
  b, s = next_tok_bs.shape
  out_bsd, (k, v) = head_forward(cfg, head, target_params, next_tok_bs, feat_bsd, mask_bs,
                                 return_kv=True)
  pad = ((0, 0), (0, 0), (0, max_len - s), (0, 0))
  cache = transformer.KVCache(
      k_bksh=(jnp.pad(k.transpose(0, 2, 1, 3), pad),), v_bksh=(jnp.pad(v.transpose(0, 2, 1, 3), pad),),
      valid_bs=jnp.pad(mask_bs > 0, ((0, 0), (0, max_len - s))),
      end=jnp.full((b,), s, jnp.int32), pos_b=jnp.sum(mask_bs > 0, axis=-1).astype(jnp.int32))
  return out_bsd[:, -1], cache
