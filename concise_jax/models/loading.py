"""One entry point for pretrained weights: `load(name_or_path) -> (cfg, params, tokenizer)`.

Accepts a known model name (resolved to a file a pip package ships, so no hub download is
needed), a path to a llama `.gguf` file, or a Hugging Face checkpoint directory (`config.json`).
"""
import pathlib

import jax
import jax.numpy as jnp

from concise_jax.models import gguf_loading
from concise_jax.models.config import ModelConfig
from concise_jax.models.tokenizer import Tokenizer

# Names configs may use (`config.model.name`) -> a function returning the weights' path.
KNOWN_MODELS = {
    "smollm2-135m-instruct": gguf_loading.locate_smollm2_gguf,
}


def resolve(name_or_path) -> pathlib.Path:
  """The file or directory behind a known model name or an existing path.

  Raises:
    ValueError: neither a known name nor an existing path; lists the known names.
  """
  if str(name_or_path) in KNOWN_MODELS:
    return KNOWN_MODELS[str(name_or_path)]()
  path = pathlib.Path(name_or_path).expanduser()
  if path.exists():
    return path
  raise ValueError(
      f"Unknown model {str(name_or_path)!r}: not an existing path and not one of "
      f"{sorted(KNOWN_MODELS)}.")


def load(name_or_path) -> tuple[ModelConfig, dict, Tokenizer]:
  """Loads config, float32 parameters (as jax arrays) and tokenizer.

  Args:
    name_or_path: a name in `KNOWN_MODELS`, a `.gguf` file, or a directory with `config.json`.

  Returns:
    `(cfg, params, tokenizer)`, params in the layout of `config.py`.
  """
  path = resolve(name_or_path)
  if path.is_file() and path.suffix == ".gguf":
    return load_gguf(path)
  if path.is_dir() and (path / "config.json").is_file():
    from concise_jax.models import hf_loading  # lazy: pulls in safetensors readers
    return hf_loading.load_hf_checkpoint(path)
  raise ValueError(f"{path} is neither a .gguf file nor a directory holding config.json.")


def load_gguf(path) -> tuple[ModelConfig, dict, Tokenizer]:
  """Config, jax params and tokenizer from one GGUF file, parsed once."""
  reader = gguf_loading.open_gguf(path)
  cfg, params_np = gguf_loading.load_gguf(reader)
  params = jax.tree.map(jnp.asarray, params_np)
  return cfg, params, Tokenizer.from_gguf(reader)
