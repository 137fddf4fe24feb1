"""The decoder: masking, RoPE, GQA, KV-cache decoding and steering, against direct formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from concise_jax import models
from concise_jax.models import layers as L
from concise_jax.models import transformer

CFG = models.TINY


@pytest.fixture(scope="module")
def params():
  return models.init_params(CFG, jax.random.key(0))


def _tokens(b, s, seed=1):
  return jax.random.randint(jax.random.key(seed), (b, s), 0, CFG.vocab_size)


def test_param_shapes_and_logical_axes(params):
  assert params["layers"]["w_q"].shape == (2, 32, 2, 16)
  assert params["layers"]["w_k"].shape == (2, 32, 1, 16)
  axes = models.param_axes(CFG)
  assert axes["layers"]["w_q"] == ("layers", "embed", "heads", "head_dim")
  assert axes["embed"] == ("vocab", "embed")
  assert jax.tree.structure(axes, is_leaf=lambda x: isinstance(x, tuple)) == \
      jax.tree.structure(params)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_causal_mask_future_tokens_do_not_change_past_logits(params):
  toks = _tokens(2, 8)
  changed = toks.at[:, 5:].set((toks[:, 5:] + 7) % CFG.vocab_size)
  a, _ = models.forward(CFG, params, toks)
  b, _ = models.forward(CFG, params, changed)
  np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
  assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-3


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_left_padding_does_not_change_logits(params):
  toks = _tokens(1, 6)
  plain, _ = models.forward(CFG, params, toks)
  padded = jnp.concatenate([jnp.full((1, 3), 5), toks], axis=1)
  mask = jnp.array([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
  out, _ = models.forward(CFG, params, padded, mask_bs=mask)
  np.testing.assert_allclose(out[:, 3:], plain, atol=1e-5)


@pytest.mark.integration  # compiles its own model programs: ~3 s on 2 cores
def test_rope_matches_direct_rotation_formula():
  h, theta, pos = 8, 10_000.0, 3
  x = jax.random.normal(jax.random.key(0), (1, 1, 1, h))
  inv = 1.0 / theta ** (np.arange(h // 2) * 2 / h)
  cos, sin = L.rope_cos_sin(jnp.array([[pos]]), jnp.asarray(inv, jnp.float32))
  got = np.asarray(L.apply_rope(x, cos, sin))[0, 0, 0]
  xv = np.asarray(x)[0, 0, 0]
  want = np.empty(h)
  for i in range(h // 2):  # rotate-half pairs (i, i + h/2) by angle pos * inv[i]
    a = pos * inv[i]
    want[i] = xv[i] * np.cos(a) - xv[i + h // 2] * np.sin(a)
    want[i + h // 2] = xv[i + h // 2] * np.cos(a) + xv[i] * np.sin(a)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_rope_relative_position_invariance():
  """q·k after RoPE depends only on the position difference."""
  cfg = CFG
  inv = L.rope_inv_freq(cfg)
  q = jax.random.normal(jax.random.key(1), (1, 1, 1, cfg.head_dim))
  k = jax.random.normal(jax.random.key(2), (1, 1, 1, cfg.head_dim))
  def score(pq, pk):
    cq, sq = L.rope_cos_sin(jnp.array([[pq]]), inv)
    ck, sk = L.rope_cos_sin(jnp.array([[pk]]), inv)
    return float((L.apply_rope(q, cq, sq) * L.apply_rope(k, ck, sk)).sum())
  assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)


def test_linear_rope_scaling_divides_frequencies():
  scaled = L.rope_inv_freq(CFG.replace(rope_scaling=("linear", 4.0)))
  np.testing.assert_allclose(scaled * 4.0, L.rope_inv_freq(CFG), rtol=1e-6)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_gqa_matches_explicit_head_repeat():
  """Query head n uses kv head n // (N/K), like HF repeat_kv (repeat_interleave)."""
  cfg = CFG.replace(n_heads=4, n_kv_heads=2, head_dim=8)
  q = jax.random.normal(jax.random.key(0), (1, 3, 4, 8))
  k = jax.random.normal(jax.random.key(1), (1, 3, 2, 8))
  v = jax.random.normal(jax.random.key(2), (1, 3, 2, 8))
  mask = jnp.tril(jnp.ones((3, 3), bool))[None]
  got = L.attention(q, k, v, mask, cfg)
  k_rep, v_rep = jnp.repeat(k, 2, axis=2), jnp.repeat(v, 2, axis=2)
  scores = jnp.einsum("bsnh,btnh->bnst", q, k_rep) / np.sqrt(8)
  scores = jnp.where(mask[:, None], scores, -np.inf)
  want = jnp.einsum("bnst,btnh->bsnh", jax.nn.softmax(scores, -1), v_rep)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.integration
def test_kv_cache_decode_equals_full_forward(params):
  toks = _tokens(3, 10)
  mask = jnp.array([[0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [1] * 10, [0] * 5 + [1] * 5])
  full, _ = models.forward(CFG, params, toks, mask_bs=mask)
  logits, cache = models.prefill(CFG, params, toks[:, :6], mask[:, :6], max_len=12)
  np.testing.assert_allclose(logits, full[:, 5], atol=1e-5)
  for t in range(6, 10):
    logits, cache = models.decode_step(CFG, params, toks[:, t], cache)
    np.testing.assert_allclose(logits, full[:, t], atol=1e-5)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
@pytest.mark.parametrize("write_first_from", [1, 10**9])
def test_decode_write_order_is_bit_identical_at_large_batch(params, monkeypatch,
                                                            write_first_from):
  """Writing the new key/value before or after attention (the order only changes XLA:CPU's
  copy insertion) gives the same bits, at the batch size where the faster order kicks in."""
  b = transformer.WRITE_FIRST_MIN_BATCH
  toks = _tokens(b, 8, seed=3)
  mask = jnp.ones((b, 8), jnp.int32).at[::3, :2].set(0)
  full, _ = models.forward(CFG, params, toks, mask_bs=mask)
  logits, cache = models.prefill(CFG, params, toks[:, :5], mask[:, :5], max_len=9)
  monkeypatch.setattr(transformer, "WRITE_FIRST_MIN_BATCH", write_first_from)
  step = jax.jit(lambda tok, c: models.decode_step(CFG, params, tok, c))  # traced per case
  for t in range(5, 8):
    logits, cache = step(toks[:, t], cache)
    np.testing.assert_allclose(logits, full[:, t], atol=1e-5)
  monkeypatch.setattr(transformer, "WRITE_FIRST_MIN_BATCH", 10**9 + 1 - write_first_from)
  other = jax.jit(lambda tok, c: models.decode_step(CFG, params, tok, c))
  _, cache_again = models.prefill(CFG, params, toks[:, :5], mask[:, :5], max_len=9)
  for t in range(5, 8):
    logits_again, cache_again = other(toks[:, t], cache_again)
  np.testing.assert_array_equal(logits_again, logits)
  for a, b_ in zip(jax.tree.leaves(cache_again), jax.tree.leaves(cache)):
    np.testing.assert_array_equal(a, b_)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_qwen_biases_and_untied_head_are_used():
  cfg = CFG.replace(qkv_bias=True, tie_embeddings=False)
  params = models.init_params(cfg, jax.random.key(0))
  assert "lm_head" in params and "b_q" in params["layers"]
  toks = _tokens(1, 5)
  base, _ = models.forward(cfg, params, toks)
  params["layers"]["b_k"] = params["layers"]["b_k"] + 0.5
  shifted, _ = models.forward(cfg, params, toks)
  assert np.abs(base - shifted).max() > 1e-4
  # The cache path must agree with the full path for this variant too.
  logits, cache = models.prefill(cfg, params, toks[:, :3], jnp.ones((1, 3), jnp.int32), 6)
  logits, cache = models.decode_step(cfg, params, toks[:, 3], cache)
  np.testing.assert_allclose(logits, shifted[:, 3], atol=1e-5)


@pytest.mark.integration
def test_gemma_style_norm_and_embedding_scale():
  cfg = CFG.replace(norm_plus_one=True, embed_scale=True, activation="gelu_tanh")
  params = models.init_params(cfg, jax.random.key(0))
  np.testing.assert_array_equal(params["final_norm"], 0.0)  # stored as w with scale 1 + w
  x = jnp.ones((1, 1, cfg.d_model)) * 3.0
  np.testing.assert_allclose(L.rms_norm(x, params["final_norm"], cfg), 1.0, atol=1e-5)
  out, _ = models.forward(cfg, params, _tokens(1, 4))
  assert np.isfinite(out).all()


@pytest.mark.integration
def test_hidden_states_and_steering(params):
  toks = _tokens(2, 6)
  base, aux = models.forward(CFG, params, toks, hidden_layers=(0, 1))
  assert aux["hidden"].shape == (2, 2, 6, CFG.d_model)
  v = jax.random.normal(jax.random.key(3), (CFG.d_model,))
  steer = models.Steering(layer=jnp.asarray(0), vector_d=v, scale=jnp.asarray(2.0))
  _, aux_s = models.forward(CFG, params, toks, hidden_layers=(0,), steering=steer)
  # After layer 0 the residual stream is shifted by exactly scale * v.
  np.testing.assert_allclose(aux_s["hidden"][0] - aux["hidden"][0], 2.0 * v + 0 * aux["hidden"][0],
                             atol=1e-5)
  zero = models.Steering(layer=jnp.asarray(1), vector_d=v, scale=jnp.asarray(0.0))
  same, _ = models.forward(CFG, params, toks, steering=zero)
  np.testing.assert_allclose(same, base, atol=1e-6)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_remat_gives_same_gradients(params):
  toks = _tokens(2, 6)
  def loss(p, cfg):
    return models.forward(cfg, p, toks)[0].mean()
  g1 = jax.grad(loss)(params, CFG)
  g2 = jax.grad(loss)(params, CFG.replace(remat=True))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), g1, g2)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_nnx_module_call_matches_pure_forward():
  model = models.Transformer(CFG, rngs=nnx.Rngs(params=jax.random.key(0)))
  toks = _tokens(1, 4)
  np.testing.assert_allclose(model(toks)[0], models.forward(
      CFG, models.init_params(CFG, jax.random.key(0)), toks)[0], atol=1e-6)
