"""Read and write Hugging Face checkpoint directories (Llama and Qwen2) in our parameter layout.

A checkpoint directory holds `config.json` plus either one `model.safetensors` or several shards
listed in `model.safetensors.index.json`. This is what a researcher points at on a pod (a local
DeepSeek-R1-Distill-Qwen-1.5B, say) and what other serving tools read back after training.

Tensors are read with safetensors' numpy backend (no torch); bf16 files come back as
`ml_dtypes.bfloat16` arrays and are upcast here. Weights come back as float32 numpy arrays in the
layout documented in `config.py`, so the caller can place them straight into their shardings
instead of first landing everything on one device.

Two layout differences from HF:

1. HF linear weights are (out, in), as in torch's `nn.Linear`; we keep (in, out) split into heads
   so the forward is an einsum, e.g. q_proj [N*H, D] -> w_q [D, N, H], o_proj [D, N*H] ->
   w_o [N, H, D].
2. HF stores one tensor per layer; we stack layers on axis 0 so the forward is one `lax.scan`.
   Stacking fills a preallocated [L, ...] array layer by layer, so peak memory is the stacked
   result plus one layer, not twice the model.

Both files use the rotate-half RoPE convention, so Q/K rows need no permutation (unlike GGUF).
"""
import contextlib
import dataclasses
import json
import pathlib
import shutil
from typing import Callable

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from concise_jax.models.config import ModelConfig

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")
_MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}

# HF class defaults, used when config.json omits a key (HF itself would fill these in).
_HF_DEFAULTS = {
    "LlamaForCausalLM": {"max_position_embeddings": 2048, "rms_norm_eps": 1e-6},
    "Qwen2ForCausalLM": {"max_position_embeddings": 32768, "rms_norm_eps": 1e-6},
}

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 5_000_000_000  # HF's "5GB" default shard size.

# Files that travel with a checkpoint so other tools can tokenize and stop generation the same way.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "generation_config.json")

# Export dtypes. bf16 is ml_dtypes' (a jax dependency), which safetensors' numpy backend handles.
_EXPORT_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}

# Present in some older checkpoints; recomputed from the config, so safe to skip.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


# --------------------------------------------------------------------------------------- config


def _architecture(hf_config: dict) -> str:
  archs = hf_config.get("architectures") or [_MODEL_TYPES.get(hf_config.get("model_type"), "?")]
  arch = archs[0]
  if arch not in SUPPORTED_ARCHITECTURES:
    raise ValueError(f"unsupported architecture {arch!r}; supported: "
                     f"{', '.join(SUPPORTED_ARCHITECTURES)}")
  return arch


def _rope_from_hf(hf_config: dict) -> tuple[float, tuple | None]:
  """(rope_theta, our rope_scaling tuple) from either config form.

  transformers >= 5 writes `rope_parameters` (theta inside); older files have top-level
  `rope_theta` and a `rope_scaling` dict keyed by "type" or "rope_type".
  """
  spec = hf_config.get("rope_parameters") or hf_config.get("rope_scaling") or {}
  theta = float(spec.get("rope_theta", hf_config.get("rope_theta", 10_000.0)))
  kind = spec.get("rope_type", spec.get("type", "default"))
  if kind == "default":
    return theta, None
  if kind == "linear":
    return theta, ("linear", float(spec["factor"]))
  if kind == "llama3":
    return theta, ("llama3", float(spec["factor"]), float(spec["low_freq_factor"]),
                   float(spec["high_freq_factor"]), int(spec["original_max_position_embeddings"]))
  raise ValueError(f"unsupported rope scaling type {kind!r}; supported: default, linear, llama3")


def _check_supported_features(arch: str, hf_config: dict):
  """Rejects config options our forward doesn't implement, rather than silently ignoring them."""
  if hf_config.get("hidden_act", "silu") != "silu":
    raise ValueError(f"unsupported hidden_act {hf_config['hidden_act']!r}; supported: silu")
  if arch == "LlamaForCausalLM" and (hf_config.get("attention_bias") or hf_config.get("mlp_bias")):
    raise ValueError("Llama attention_bias/mlp_bias (o_proj and MLP biases) are not supported")
  layer_types = hf_config.get("layer_types") or []
  if hf_config.get("use_sliding_window") or any(t != "full_attention" for t in layer_types):
    raise ValueError("sliding-window attention is not supported; only full attention")


def config_from_hf(hf_config: dict) -> ModelConfig:
  """Our `ModelConfig` from a Hugging Face `config.json` dict.

  Args:
    hf_config: parsed config.json of a `LlamaForCausalLM` or `Qwen2ForCausalLM` checkpoint.
  Returns:
    The ModelConfig (fp32 compute and params; callers `replace` dtypes for bf16 runs).
  Raises:
    ValueError: for other architectures, or options our forward doesn't implement.
  """
  arch = _architecture(hf_config)
  _check_supported_features(arch, hf_config)
  get = lambda key: hf_config.get(key, _HF_DEFAULTS[arch].get(key))
  d, n = hf_config["hidden_size"], hf_config["num_attention_heads"]
  theta, scaling = _rope_from_hf(hf_config)
  return ModelConfig(
      vocab_size=hf_config["vocab_size"], d_model=d, n_layers=hf_config["num_hidden_layers"],
      n_heads=n, n_kv_heads=hf_config.get("num_key_value_heads") or n,
      head_dim=hf_config.get("head_dim") or d // n, mlp_dim=hf_config["intermediate_size"],
      rope_theta=theta, rope_scaling=scaling, rms_eps=float(get("rms_norm_eps")),
      tie_embeddings=bool(hf_config.get("tie_word_embeddings", False)),
      qkv_bias=arch == "Qwen2ForCausalLM", max_seq_len=int(get("max_position_embeddings")))


def _rope_to_hf(scaling: tuple | None) -> dict | None:
  if scaling is None:
    return None
  if scaling[0] == "linear":
    return {"rope_type": "linear", "factor": scaling[1]}
  _, factor, low_ff, high_ff, orig_max = scaling
  return {"rope_type": "llama3", "factor": factor, "low_freq_factor": low_ff,
          "high_freq_factor": high_ff, "original_max_position_embeddings": orig_max}


def config_to_hf(cfg: ModelConfig, torch_dtype: str = "float32") -> dict:
  """The config.json dict for `cfg`: Qwen2 when it has q/k/v biases, Llama otherwise.

  Uses the pre-transformers-5 keys (`rope_theta`, `rope_scaling`) because every version of
  transformers and the common serving tools read them.
  """
  if cfg.norm_plus_one or cfg.embed_scale or cfg.activation != "silu":
    raise ValueError("only Llama/Qwen2-style configs can be exported (no Gemma norm, embedding "
                     "scale or GeGLU)")
  arch = "Qwen2ForCausalLM" if cfg.qkv_bias else "LlamaForCausalLM"
  hf = {
      "architectures": [arch], "model_type": "qwen2" if cfg.qkv_bias else "llama",
      "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
      "intermediate_size": cfg.mlp_dim, "num_hidden_layers": cfg.n_layers,
      "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads,
      "head_dim": cfg.head_dim, "hidden_act": "silu",
      "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.rms_eps,
      "rope_theta": cfg.rope_theta, "rope_scaling": _rope_to_hf(cfg.rope_scaling),
      "tie_word_embeddings": cfg.tie_embeddings, "torch_dtype": torch_dtype,
  }
  if cfg.qkv_bias:
    hf["use_sliding_window"] = False
  else:
    hf.update(attention_bias=False, mlp_bias=False)
  return hf


# ------------------------------------------------------------------------------- tensor mapping


@dataclasses.dataclass(frozen=True)
class _Tensor:
  """One HF tensor <-> one of our parameters (one layer's slice, for stacked parameters)."""
  ours: str
  hf: str  # for layer tensors, the suffix after "model.layers.{i}."
  to_ours: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]


def _identity(x):
  return x


def _transpose(x):
  return x.T


def _top_tensors(cfg: ModelConfig) -> list[_Tensor]:
  tensors = [_Tensor("embed", "model.embed_tokens.weight", _identity, _identity),
             _Tensor("final_norm", "model.norm.weight", _identity, _identity)]
  if not cfg.tie_embeddings:  # HF lm_head is [V, D]; ours is [D, V].
    tensors.append(_Tensor("lm_head", "lm_head.weight", _transpose, _transpose))
  return tensors


def _head_split(heads: int, d: int, h: int) -> tuple[Callable, Callable]:
  """[heads*H, D] (out, in) <-> [D, heads, H]: row heads*H + j is head `heads`, dim j."""
  return (lambda w: w.reshape(heads, h, d).transpose(2, 0, 1),
          lambda w: w.transpose(1, 2, 0).reshape(heads * h, d))


def _layer_tensors(cfg: ModelConfig) -> list[_Tensor]:
  d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  tensors = [
      _Tensor("attn_norm", "input_layernorm.weight", _identity, _identity),
      _Tensor("w_q", "self_attn.q_proj.weight", *_head_split(n, d, h)),
      _Tensor("w_k", "self_attn.k_proj.weight", *_head_split(k, d, h)),
      _Tensor("w_v", "self_attn.v_proj.weight", *_head_split(k, d, h)),
      # o_proj is [D, N*H] (out, in); ours is [N, H, D].
      _Tensor("w_o", "self_attn.o_proj.weight", lambda w: w.T.reshape(n, h, d),
              lambda w: w.reshape(n * h, d).T),
      _Tensor("mlp_norm", "post_attention_layernorm.weight", _identity, _identity),
      _Tensor("w_gate", "mlp.gate_proj.weight", _transpose, _transpose),
      _Tensor("w_up", "mlp.up_proj.weight", _transpose, _transpose),
      _Tensor("w_down", "mlp.down_proj.weight", _transpose, _transpose),
  ]
  if cfg.qkv_bias:
    for ours, proj, heads in (("b_q", "q", n), ("b_k", "k", k), ("b_v", "v", k)):
      tensors.append(_Tensor(ours, f"self_attn.{proj}_proj.bias",
                             lambda b, heads=heads: b.reshape(heads, h), lambda b: b.reshape(-1)))
  return tensors


def _layer_name(i: int, suffix: str) -> str:
  return f"model.layers.{i}.{suffix}"


def _expected_hf_names(cfg: ModelConfig) -> list[str]:
  names = [t.hf for t in _top_tensors(cfg)]
  for i in range(cfg.n_layers):
    names += [_layer_name(i, t.hf) for t in _layer_tensors(cfg)]
  return names


# ------------------------------------------------------------------------------------- loading


def _weight_map(path: pathlib.Path) -> dict[str, str]:
  """HF tensor name -> file name, for a single-file or a sharded checkpoint."""
  if (path / INDEX_FILE).exists():
    return json.loads((path / INDEX_FILE).read_text())["weight_map"]
  if (path / SINGLE_FILE).exists():
    with safe_open(str(path / SINGLE_FILE), framework="numpy") as f:
      return {name: SINGLE_FILE for name in f.keys()}
  raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {path}")


def _check_names(cfg: ModelConfig, weight_map: dict[str, str], path):
  """Missing or unexpected tensors are errors: dropping e.g. an o_proj bias would be silent."""
  expected = set(_expected_hf_names(cfg))
  missing = sorted(expected - set(weight_map))
  unexpected = sorted(name for name in set(weight_map) - expected
                      if not name.endswith(_IGNORED_SUFFIXES)
                      and not (cfg.tie_embeddings and name == "lm_head.weight"))
  if missing or unexpected:
    raise KeyError(f"checkpoint {path} does not match its config: missing {missing[:8]}, "
                   f"unexpected {unexpected[:8]}")


class _TensorReader:
  """Reads HF tensors by name as float32, keeping each shard open once."""

  def __init__(self, path: pathlib.Path, weight_map: dict[str, str], stack: contextlib.ExitStack):
    self._path, self._weight_map, self._stack, self._files = path, weight_map, stack, {}

  def __call__(self, name: str) -> np.ndarray:
    file = self._weight_map[name]
    if file not in self._files:
      self._files[file] = self._stack.enter_context(
          safe_open(str(self._path / file), framework="numpy"))
    # bf16 arrives as ml_dtypes.bfloat16; the cast upcasts exactly.
    return np.asarray(self._files[file].get_tensor(name), np.float32)


def _read_params(cfg: ModelConfig, read: Callable[[str], np.ndarray]) -> dict:
  params = {t.ours: np.ascontiguousarray(t.to_ours(read(t.hf))) for t in _top_tensors(cfg)}
  layers = {}
  for t in _layer_tensors(cfg):
    first = t.to_ours(read(_layer_name(0, t.hf)))
    stacked = np.empty((cfg.n_layers,) + first.shape, np.float32)
    stacked[0] = first
    for i in range(1, cfg.n_layers):
      stacked[i] = t.to_ours(read(_layer_name(i, t.hf)))
    layers[t.ours] = stacked
  params["layers"] = layers
  return params


def _load_tokenizer(path: pathlib.Path):
  if not (path / "tokenizer.json").exists():
    return None
  # Imported lazily: the tokenizer pulls in template machinery weight-only users don't need.
  from concise_jax.models.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  return Tokenizer.from_hf_dir(path)


def load_hf_checkpoint(path) -> tuple[ModelConfig, dict, object]:
  """Loads a local HF Llama/Qwen2 checkpoint directory.

  Args:
    path: directory with `config.json` and `model.safetensors` or a sharded
      `model.safetensors.index.json`; tokenizer files are optional.
  Returns:
    (cfg, params, tokenizer): params is the nested dict of `config.py` as float32 numpy arrays;
    tokenizer is a `models.tokenizer.Tokenizer`, or None when there is no `tokenizer.json`.
  Raises:
    ValueError: unsupported architecture or option. KeyError: tensors don't match the config.
  """
  path = pathlib.Path(path)
  cfg = config_from_hf(json.loads((path / "config.json").read_text()))
  weight_map = _weight_map(path)
  _check_names(cfg, weight_map, path)
  with contextlib.ExitStack() as stack:
    params = _read_params(cfg, _TensorReader(path, weight_map, stack))
  return cfg, params, _load_tokenizer(path)


# ------------------------------------------------------------------------------------ exporting


def _hf_tensor_plan(cfg: ModelConfig, params: dict, dtype) -> list[tuple[str, int, Callable]]:
  """(HF name, byte size, thunk producing the HF array) for every tensor.

  Thunks let the exporter materialise one shard at a time; `np.asarray` on a jax array gathers
  only that layer's slice to the host.
  """
  itemsize = np.dtype(dtype).itemsize
  convert = lambda t, x: np.ascontiguousarray(t.to_hf(np.asarray(x, np.float32)).astype(dtype))
  plan = [(t.hf, params[t.ours].size * itemsize, lambda t=t: convert(t, params[t.ours]))
          for t in _top_tensors(cfg)]
  for i in range(cfg.n_layers):
    for t in _layer_tensors(cfg):
      leaf = params["layers"][t.ours]
      plan.append((_layer_name(i, t.hf), leaf.size // cfg.n_layers * itemsize,
                   lambda t=t, leaf=leaf, i=i: convert(t, leaf[i])))
  return plan


def _split_shards(plan: list, max_shard_bytes: int) -> list[list]:
  """Greedy split in order; a tensor bigger than the limit gets a shard of its own."""
  shards, size = [[]], 0
  for entry in plan:
    if shards[-1] and size + entry[1] > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(entry)
    size += entry[1]
  return shards


def _remove_old_weights(path: pathlib.Path):
  """A stale index or shard from an earlier export would shadow or mix with the new weights."""
  for old in [*path.glob("model*.safetensors"), path / INDEX_FILE]:
    old.unlink(missing_ok=True)


def _copy_tokenizer_files(tokenizer_dir, path: pathlib.Path):
  tokenizer_dir = pathlib.Path(tokenizer_dir)
  found = [name for name in TOKENIZER_FILES if (tokenizer_dir / name).exists()]
  if not found:
    raise FileNotFoundError(f"no tokenizer files ({', '.join(TOKENIZER_FILES)}) in "
                            f"{tokenizer_dir}")
  for name in found:
    shutil.copyfile(tokenizer_dir / name, path / name)


def export_hf_checkpoint(cfg: ModelConfig, params: dict, path, tokenizer_dir=None,
                         max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, dtype: str = "float32",
                         extra_config: dict | None = None):
  """Writes `params` as an HF checkpoint directory; the exact inverse of `load_hf_checkpoint`.

  Args:
    cfg: the model config; Qwen2 form when `cfg.qkv_bias`, Llama form otherwise.
    params: nested dict of `config.py` (numpy or fully addressable jax arrays, any float dtype).
    path: output directory (created if needed).
    tokenizer_dir: if given, tokenizer/generation-config files are copied from it (e.g. the
      directory the policy was loaded from), so serving tools stop on the same eos ids.
    max_shard_bytes: above this total, tensors are split into `model-0000i-of-0000n.safetensors`
      files plus `model.safetensors.index.json`.
    dtype: "float32" (exact) or "bfloat16" (half the size; what most serving tools load anyway).
    extra_config: keys merged into config.json, e.g. {"bos_token_id": 1, "eos_token_id": 2}.
  """
  if dtype not in _EXPORT_DTYPES:
    raise ValueError(f"unsupported export dtype {dtype!r}; supported: {', '.join(_EXPORT_DTYPES)}")
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  _remove_old_weights(path)
  hf_config = {**config_to_hf(cfg, torch_dtype=dtype), **(extra_config or {})}
  (path / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
  shards = _split_shards(_hf_tensor_plan(cfg, params, _EXPORT_DTYPES[dtype]), max_shard_bytes)
  names = ([SINGLE_FILE] if len(shards) == 1 else
           [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
  for name, shard in zip(names, shards):
    # transformers refuses safetensors files without format metadata.
    save_file({hf: make() for hf, _, make in shard}, str(path / name), metadata={"format": "pt"})
  if len(shards) > 1:
    index = {"metadata": {"total_size": sum(e[1] for s in shards for e in s)},
             "weight_map": {e[0]: name for name, s in zip(names, shards) for e in s}}
    (path / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
  if tokenizer_dir is not None:
    _copy_tokenizer_files(tokenizer_dir, path)
