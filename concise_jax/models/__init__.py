"""Decoder models: config, Flax parameter declaration, pure forward, KV-cache decoding, loaders."""
from concise_jax.models import tiny
from concise_jax.models.config import SMOLLM2_135M, TINY, ModelConfig
from concise_jax.models.transformer import (KVCache, Steering, Transformer, decode_step, forward,
                                            unstack_layers,
                                            init_cache, init_params, output_logits, param_axes,
                                            positions_from_mask, prefill)


def load(name_or_path):
  """(ModelConfig, params, Tokenizer) for a known name, a .gguf file or an HF checkpoint dir."""
  from concise_jax.models import loading  # pylint: disable=import-outside-toplevel
  return loading.load(name_or_path)
