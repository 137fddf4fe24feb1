"""concise_jax: RL fine-tuning of language models toward concise reasoning, in JAX/Flax."""
import jax as _jax

# Random draws on sharded arrays stay local to their shard (no extra transfers).
_jax.config.update("jax_threefry_partitionable", True)

__version__ = "0.1.0"
