"""HF checkpoint loading/export: tiny Llama/Qwen2 checkpoints written here with numpy, no downloads.

The expected layouts below are written independently of `hf_loading` (transpose-then-reshape
where the module reshapes then transposes), so a mapping bug can't cancel out in a round trip.
"""
import json

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from concise_jax.models import hf_loading, transformer
from concise_jax.models.config import ModelConfig

_ARCH_TYPES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}


def _hf_config(arch="LlamaForCausalLM", tie=False, **overrides) -> dict:
  """A tiny config.json: GQA 4:2, head_dim 8 = hidden / heads unless overridden."""
  config = {"architectures": [arch], "model_type": _ARCH_TYPES[arch], "vocab_size": 48,
            "hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu",
            "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10_000.0,
            "tie_word_embeddings": tie, "torch_dtype": "float32"}
  config.update(overrides)
  return config


def _hf_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
  """Random weights under HF names and (out, in) shapes."""
  rng = np.random.default_rng(seed)
  w = lambda *shape: (0.2 * rng.standard_normal(shape)).astype(np.float32)
  v, d, f = config["vocab_size"], config["hidden_size"], config["intermediate_size"]
  n, k = config["num_attention_heads"], config["num_key_value_heads"]
  h = config.get("head_dim") or d // n
  tensors = {"model.embed_tokens.weight": w(v, d), "model.norm.weight": 1 + w(d)}
  if not config["tie_word_embeddings"]:
    tensors["lm_head.weight"] = w(v, d)
  for i in range(config["num_hidden_layers"]):
    p = f"model.layers.{i}."
    tensors.update({
        p + "input_layernorm.weight": 1 + w(d), p + "post_attention_layernorm.weight": 1 + w(d),
        p + "self_attn.q_proj.weight": w(n * h, d), p + "self_attn.k_proj.weight": w(k * h, d),
        p + "self_attn.v_proj.weight": w(k * h, d), p + "self_attn.o_proj.weight": w(d, n * h),
        p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
        p + "mlp.down_proj.weight": w(d, f)})
    if config["architectures"][0] == "Qwen2ForCausalLM":
      tensors.update({p + "self_attn.q_proj.bias": w(n * h), p + "self_attn.k_proj.bias": w(k * h),
                      p + "self_attn.v_proj.bias": w(k * h)})
  return tensors


def _write_checkpoint(path, config, tensors, shards=1, dtype=np.float32):
  """Writes config.json and the tensors, round-robin over `shards` files with an index."""
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(json.dumps(config))
  tensors = {name: t.astype(dtype) for name, t in tensors.items()}
  if shards == 1:
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path
  files = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
  weight_map = {name: files[j % shards] for j, name in enumerate(sorted(tensors))}
  for file in files:
    save_file({n: t for n, t in tensors.items() if weight_map[n] == file}, str(path / file),
              metadata={"format": "pt"})
  (path / "model.safetensors.index.json").write_text(
      json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
  return path


def _read_exported(path) -> dict[str, np.ndarray]:
  tensors = {}
  for file in sorted(path.glob("*.safetensors")):
    tensors.update(load_file(str(file)))
  return tensors


def _expected_params(config: dict, tensors: dict) -> dict:
  """Our layout, derived from HF tensors by transposing to (in, out) and then splitting heads."""
  d, n, k = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
  h = config.get("head_dim") or d // n
  per_layer = lambda suffix: np.stack([tensors[f"model.layers.{i}.{suffix}"]
                                       for i in range(config["num_hidden_layers"])])
  heads = lambda suffix, m: per_layer(suffix).transpose(0, 2, 1).reshape(-1, d, m, h)
  layers = {"attn_norm": per_layer("input_layernorm.weight"),
            "mlp_norm": per_layer("post_attention_layernorm.weight"),
            "w_q": heads("self_attn.q_proj.weight", n), "w_k": heads("self_attn.k_proj.weight", k),
            "w_v": heads("self_attn.v_proj.weight", k),
            "w_o": per_layer("self_attn.o_proj.weight").transpose(0, 2, 1).reshape(-1, n, h, d),
            "w_gate": per_layer("mlp.gate_proj.weight").transpose(0, 2, 1),
            "w_up": per_layer("mlp.up_proj.weight").transpose(0, 2, 1),
            "w_down": per_layer("mlp.down_proj.weight").transpose(0, 2, 1)}
  if config["architectures"][0] == "Qwen2ForCausalLM":
    for ours, proj, m in (("b_q", "q", n), ("b_k", "k", k), ("b_v", "v", k)):
      layers[ours] = per_layer(f"self_attn.{proj}_proj.bias").reshape(-1, m, h)
  params = {"embed": tensors["model.embed_tokens.weight"],
            "final_norm": tensors["model.norm.weight"], "layers": layers}
  if not config["tie_word_embeddings"]:
    params["lm_head"] = tensors["lm_head.weight"].T
  return params


def _assert_trees_equal(actual, expected):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  jax.tree.map(np.testing.assert_array_equal, actual, expected)


# ---------------------------------------------------------------------------------- configs


def test_config_from_hf_llama_defaults_head_dim_and_fills_hf_defaults():
  config = _hf_config(tie=True)
  del config["max_position_embeddings"], config["rms_norm_eps"]
  assert hf_loading.config_from_hf(config) == ModelConfig(
      vocab_size=48, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, mlp_dim=40,
      rope_theta=10_000.0, rope_scaling=None, rms_eps=1e-6, tie_embeddings=True, qkv_bias=False,
      max_seq_len=2048)


def test_config_from_hf_qwen2_in_transformers5_form():
  """transformers >= 5 writes rope_theta inside `rope_parameters`."""
  config = _hf_config("Qwen2ForCausalLM", head_dim=16, rms_norm_eps=1e-5,
                      rope_parameters={"rope_type": "default", "rope_theta": 1e6})
  del config["rope_theta"]
  assert hf_loading.config_from_hf(config) == ModelConfig(
      vocab_size=48, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, mlp_dim=40,
      rope_theta=1e6, rope_scaling=None, rms_eps=1e-5, tie_embeddings=False, qkv_bias=True,
      max_seq_len=128)


_LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 64}


@pytest.mark.parametrize("overrides, expected", [
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, ("linear", 2.0)),
    ({"rope_scaling": {"rope_type": "llama3", **_LLAMA3}}, ("llama3", 8.0, 1.0, 4.0, 64)),
    ({"rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10_000.0}},
     ("linear", 4.0)),
    ({"rope_scaling": {"rope_type": "default"}}, None),
])
def test_config_from_hf_rope_scaling(overrides, expected):
  assert hf_loading.config_from_hf(_hf_config(**overrides)).rope_scaling == expected


@pytest.mark.parametrize("overrides, message", [
    ({"architectures": ["GemmaForCausalLM"]},
     "'GemmaForCausalLM'; supported: LlamaForCausalLM, Qwen2ForCausalLM"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "'yarn'"),
    ({"attention_bias": True}, "attention_bias"),
    ({"use_sliding_window": True}, "sliding-window"),
    ({"hidden_act": "gelu"}, "'gelu'"),
])
def test_config_from_hf_rejects_what_the_forward_cannot_run(overrides, message):
  with pytest.raises(ValueError, match=message):
    hf_loading.config_from_hf(_hf_config(**overrides))


@pytest.mark.parametrize("cfg", [
    ModelConfig(vocab_size=48, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                mlp_dim=40, rope_scaling=("llama3", 8.0, 1.0, 4.0, 64), tie_embeddings=False),
    ModelConfig(vocab_size=48, d_model=32, n_layers=3, n_heads=2, n_kv_heads=1, head_dim=16,
                mlp_dim=40, rope_theta=1e6, rope_scaling=("linear", 2.0), rms_eps=1e-6,
                qkv_bias=True, max_seq_len=4096),
])
def test_config_to_hf_round_trips(cfg):
  assert hf_loading.config_from_hf(hf_loading.config_to_hf(cfg)) == cfg


# ------------------------------------------------------------------------------ load / export

_CASES = [("LlamaForCausalLM", False, 1), ("LlamaForCausalLM", True, 3),
          ("Qwen2ForCausalLM", False, 2), ("Qwen2ForCausalLM", True, 1)]


@pytest.mark.parametrize("arch, tie, shards", _CASES)
def test_load_maps_hf_tensors_into_our_layout(tmp_path, arch, tie, shards):
  config = _hf_config(arch, tie=tie)
  tensors = _hf_tensors(config)
  cfg, params, tokenizer = hf_loading.load_hf_checkpoint(
      _write_checkpoint(tmp_path, config, tensors, shards))
  assert cfg == hf_loading.config_from_hf(config)
  assert tokenizer is None
  _assert_trees_equal(params, _expected_params(config, tensors))
  # Same tree, shapes and dtype as the model's own initialiser.
  init = jax.eval_shape(lambda: transformer.init_params(cfg, jax.random.key(0)))
  assert jax.tree.map(lambda a: (a.shape, a.dtype), params) == jax.tree.map(
      lambda a: (a.shape, a.dtype), init)


@pytest.mark.parametrize("arch, tie, shards", _CASES)
def test_load_export_load_round_trips_exactly(tmp_path, arch, tie, shards):
  config = _hf_config(arch, tie=tie, head_dim=16)
  tensors = _hf_tensors(config)
  cfg, params, _ = hf_loading.load_hf_checkpoint(
      _write_checkpoint(tmp_path / "in", config, tensors, shards))
  hf_loading.export_hf_checkpoint(cfg, params, tmp_path / "out")
  _assert_trees_equal(_read_exported(tmp_path / "out"), tensors)
  exported_config = json.loads((tmp_path / "out/config.json").read_text())
  assert exported_config["architectures"] == [arch]
  assert exported_config["torch_dtype"] == "float32"
  cfg2, params2, _ = hf_loading.load_hf_checkpoint(tmp_path / "out")
  assert cfg2 == cfg
  _assert_trees_equal(params2, params)


def test_export_shards_with_index_and_replaces_stale_files(tmp_path):
  config = _hf_config("Qwen2ForCausalLM")
  tensors = _hf_tensors(config)
  cfg, params, _ = hf_loading.load_hf_checkpoint(_write_checkpoint(tmp_path / "in", config,
                                                                   tensors))
  out = tmp_path / "out"
  hf_loading.export_hf_checkpoint(cfg, params, out, max_shard_bytes=20_000)
  index = json.loads((out / "model.safetensors.index.json").read_text())
  files = sorted(p.name for p in out.glob("*.safetensors"))
  assert len(files) > 2 and "model.safetensors" not in files
  assert sorted(set(index["weight_map"].values())) == files
  assert index["weight_map"].keys() == tensors.keys()
  assert index["metadata"]["total_size"] == sum(t.nbytes for t in tensors.values())
  assert all((out / f).stat().st_size < 20_000 + 4096 for f in files)  # + header
  _assert_trees_equal(hf_loading.load_hf_checkpoint(out)[1], params)
  # Re-exporting unsharded into the same directory must not leave the old index behind.
  hf_loading.export_hf_checkpoint(cfg, params, out)
  assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
  _assert_trees_equal(hf_loading.load_hf_checkpoint(out)[1], params)


def test_bf16_checkpoints_load_as_float32_and_export_as_bf16(tmp_path):
  config = _hf_config("Qwen2ForCausalLM", torch_dtype="bfloat16")
  tensors = _hf_tensors(config)
  _write_checkpoint(tmp_path / "in", config, tensors, dtype=ml_dtypes.bfloat16)
  cfg, params, _ = hf_loading.load_hf_checkpoint(tmp_path / "in")
  rounded = {n: t.astype(ml_dtypes.bfloat16).astype(np.float32) for n, t in tensors.items()}
  _assert_trees_equal(params, _expected_params(config, rounded))
  hf_loading.export_hf_checkpoint(cfg, params, tmp_path / "out", dtype="bfloat16")
  assert json.loads((tmp_path / "out/config.json").read_text())["torch_dtype"] == "bfloat16"
  assert {t.dtype for t in _read_exported(tmp_path / "out").values()} == {
      np.dtype(ml_dtypes.bfloat16)}
  _assert_trees_equal(hf_loading.load_hf_checkpoint(tmp_path / "out")[1], params)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("model.layers.1.mlp.up_proj.weight"), "missing.*layers.1.mlp.up_proj"),
    (lambda t: t.update({"model.layers.0.self_attn.o_proj.bias": np.zeros(32, np.float32)}),
     "unexpected.*o_proj.bias"),
])
def test_load_rejects_tensors_that_do_not_match_the_config(tmp_path, change, message):
  config = _hf_config()
  tensors = _hf_tensors(config)
  change(tensors)
  with pytest.raises(KeyError, match=message):
    hf_loading.load_hf_checkpoint(_write_checkpoint(tmp_path, config, tensors))


def test_tied_checkpoints_ignore_a_stored_lm_head(tmp_path):
  config = _hf_config(tie=True)
  tensors = _hf_tensors(config)
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
  params = hf_loading.load_hf_checkpoint(_write_checkpoint(tmp_path, config, tensors))[1]
  assert "lm_head" not in params


def _write_tokenizer(path):
  tokenizers = pytest.importorskip("tokenizers")
  vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", "hello", "world"])}
  backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
  backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  backend.add_special_tokens(["<eos>"])
  path.mkdir(parents=True, exist_ok=True)
  backend.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<eos>"}))


def test_tokenizer_is_loaded_and_copied_on_export(tmp_path):
  pytest.importorskip("concise_jax.models.tokenizer")
  config = _hf_config()
  _write_checkpoint(tmp_path / "in", config, _hf_tensors(config))
  _write_tokenizer(tmp_path / "in")
  cfg, params, tokenizer = hf_loading.load_hf_checkpoint(tmp_path / "in")
  assert tokenizer.encode("hello world") == [2, 3]
  assert 1 in tokenizer.eos_ids
  hf_loading.export_hf_checkpoint(cfg, params, tmp_path / "out", tokenizer_dir=tmp_path / "in")
  for name in ("tokenizer.json", "tokenizer_config.json"):
    assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "in" / name).read_bytes()
  assert hf_loading.load_hf_checkpoint(tmp_path / "out")[2].encode("world hello") == [3, 2]


def test_export_with_an_empty_tokenizer_dir_fails_loudly(tmp_path):
  config = _hf_config()
  cfg, params, _ = hf_loading.load_hf_checkpoint(
      _write_checkpoint(tmp_path / "in", config, _hf_tensors(config)))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no tokenizer files"):
    hf_loading.export_hf_checkpoint(cfg, params, tmp_path / "out", tokenizer_dir=tmp_path / "empty")


# ------------------------------------------------------------------------------------ logits

# One compile per config instead of op-by-op dispatch; the cfg is a hashable static argument.
_forward = jax.jit(transformer.forward, static_argnums=0)
_TOKENS_BS = np.array([[3, 17, 0, 42, 5, 9, 33, 1], [47, 2, 2, 8, 19, 30, 11, 4]], np.int32)


@pytest.mark.parametrize("arch, tie", [("LlamaForCausalLM", True), ("Qwen2ForCausalLM", False)])
def test_logits_identical_after_export_and_reload(tmp_path, arch, tie):
  """Policy params held as jax arrays survive export -> load bit for bit, and so do the logits."""
  config = _hf_config(arch, tie=tie, rope_scaling={"rope_type": "llama3", **_LLAMA3})
  cfg = hf_loading.config_from_hf(config)
  params = jax.tree.map(jnp.asarray, _expected_params(config, _hf_tensors(config, seed=1)))
  hf_loading.export_hf_checkpoint(cfg, params, tmp_path, max_shard_bytes=50_000)
  cfg2, params2, _ = hf_loading.load_hf_checkpoint(tmp_path)
  assert cfg2 == cfg
  _assert_trees_equal(params2, jax.tree.map(np.asarray, params))
  logits, _ = _forward(cfg, params, jnp.asarray(_TOKENS_BS))
  logits2, _ = _forward(cfg2, jax.tree.map(jnp.asarray, params2), jnp.asarray(_TOKENS_BS))
  np.testing.assert_array_equal(logits2, logits)


_TORCH_CASES = {
    "llama_tied": _hf_config(tie=True),
    "llama_head_dim16_llama3_rope": _hf_config(
        head_dim=16, rope_theta=500_000.0, rope_scaling={"rope_type": "llama3", **_LLAMA3}),
    "llama_linear_rope": _hf_config(rope_scaling={"type": "linear", "factor": 2.0}),
    "qwen2_untied": _hf_config("Qwen2ForCausalLM", rope_theta=1e6),
    "qwen2_tied_sharded": _hf_config("Qwen2ForCausalLM", tie=True),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", [  # llama_tied, the first case: ~10 s on 2 cores
    pytest.param(n, marks=pytest.mark.integration) if n == "llama_tied" else n
    for n in _TORCH_CASES])
def test_logits_match_transformers_torch(tmp_path, name):
  torch = pytest.importorskip("torch")
  auto = pytest.importorskip("transformers").AutoModelForCausalLM
  config = _TORCH_CASES[name]
  _write_checkpoint(tmp_path, config, _hf_tensors(config), shards=2 if "sharded" in name else 1)
  model = auto.from_pretrained(tmp_path, dtype=torch.float32, attn_implementation="eager")
  with torch.no_grad():
    expected = model(torch.from_numpy(_TOKENS_BS).long()).logits.numpy()
  cfg, params, _ = hf_loading.load_hf_checkpoint(tmp_path)
  logits, _ = _forward(cfg, jax.tree.map(jnp.asarray, params), jnp.asarray(_TOKENS_BS))
  print(f"{name}: max |logit diff| = {np.abs(np.asarray(logits) - expected).max():.2e}")
  np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=1e-5)
