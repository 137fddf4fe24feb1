"""Tiny targets and drafts that behave like language models enough to test speculation.

A freshly initialised tiny model (weights ~N(0, 0.02), tied embeddings) just copies its last
input token, so every draft agrees with it. Scaling the weights up gives varied, peaked
next-token distributions; a noisy copy of the target is a draft that agrees only sometimes
(ragged acceptance).
"""
import jax

from concise_jax.models import tiny, transformer


def sharp_tiny(seed: int = 0, scale: float = 10.0) -> dict:
  """Tiny-model params with embeddings and weight matrices scaled by `scale` (norms untouched)."""
  params = transformer.init_params(tiny.tiny_config(), jax.random.key(seed))
  layers = {k: (v * scale if k.startswith("w_") else v) for k, v in params["layers"].items()}
  return {**params, "embed": params["embed"] * scale, "layers": layers}


def noisy_copy(params: dict, seed: int, rel_noise: float) -> dict:
  """params + Gaussian noise of `rel_noise` times each leaf's std (a partially agreeing draft)."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  noisy = [x + rel_noise * x.std() * jax.random.normal(k, x.shape, x.dtype)
           for x, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, noisy)
