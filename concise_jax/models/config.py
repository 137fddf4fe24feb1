"""Model hyper-parameters for the one decoder family we support (Llama, Qwen2, Gemma-style).

Parameter layout (shared by the Flax module, every loader and every exporter). Names and shapes,
with L layers, V vocab, D model dim, N query heads, K kv heads, H head dim, F MLP dim:

  embed        [V, D]        ("vocab", "embed")
  lm_head      [D, V]        ("embed", "vocab")            only when not tie_embeddings
  final_norm   [D]           ("embed",)
  layers/attn_norm [L, D]    ("layers", "embed")
  layers/w_q   [L, D, N, H]  ("layers", "embed", "heads", "head_dim")
  layers/w_k   [L, D, K, H]  ("layers", "embed", "kv_heads", "head_dim")
  layers/w_v   [L, D, K, H]  ("layers", "embed", "kv_heads", "head_dim")
  layers/b_q   [L, N, H], b_k / b_v [L, K, H]                only when qkv_bias (Qwen2)
  layers/w_o   [L, N, H, D]  ("layers", "heads", "head_dim", "embed")
  layers/mlp_norm [L, D]     ("layers", "embed")
  layers/w_gate, w_up [L, D, F] ("layers", "embed", "mlp");  w_down [L, F, D]

Layers are stacked on a leading axis so the forward is one `lax.scan` (compile time independent
of depth). RoPE uses the rotate-half convention of Hugging Face checkpoints; loaders of
interleaved-RoPE files (llama GGUF) un-permute Q/K rows to match.
"""
import dataclasses

import jax.numpy as jnp


# Per-layer rematerialisation, cheapest compute first: "none" stores every layer's forward
# values; "dots" stores the outputs of the weight matmuls (projections, MLP) and recomputes the
# rest (norms, RoPE, attention scores, activations); "full" stores only each layer's input and
# recomputes the whole layer in the backward (a second forward, ~25% of an update).
REMAT_POLICIES = ("none", "dots", "full")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Static description of a decoder; hashable so it can be a jit static argument."""
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  mlp_dim: int
  rope_theta: float = 10_000.0
  # None, or ("linear", factor) / ("llama3", factor, low_freq_factor, high_freq_factor, orig_max_pos).
  rope_scaling: tuple | None = None
  rms_eps: float = 1e-5
  tie_embeddings: bool = True
  qkv_bias: bool = False           # Qwen2 has q/k/v biases.
  norm_plus_one: bool = False      # Gemma stores RMSNorm scale as (1 + w).
  embed_scale: bool = False        # Gemma multiplies embeddings by sqrt(D).
  activation: str = "silu"         # "silu" (SwiGLU) or "gelu_tanh" (Gemma GeGLU).
  max_seq_len: int = 8192
  dtype: str = "float32"           # compute dtype; fp32 on CPU (bf16 matvecs are slow on XLA:CPU).
  param_dtype: str = "float32"
  remat: bool | str = False        # per-layer remat policy: False / "none", "dots" (keep the
                                   #   matmul outputs, recompute the rest) or True / "full"

  @property
  def remat_policy(self) -> str:
    """"none", "dots" or "full" (`remat` also accepts the booleans False / True)."""
    policy = {False: "none", True: "full"}.get(self.remat, self.remat)
    if policy not in REMAT_POLICIES:
      raise ValueError(f"remat {self.remat!r}; valid choices: {', '.join(REMAT_POLICIES)}")
    return policy

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)


SMOLLM2_135M = ModelConfig(
    vocab_size=49152, d_model=576, n_layers=30, n_heads=9, n_kv_heads=3, head_dim=64,
    mlp_dim=1536, rope_theta=100_000.0, rms_eps=1e-5, tie_embeddings=True, max_seq_len=8192)

# The test model: 2 layers, d=32, 2 heads (GQA 2:1 needs n_heads=2, n_kv_heads=1).
TINY = ModelConfig(
    vocab_size=64, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=16, mlp_dim=64,
    rope_theta=10_000.0, tie_embeddings=True, max_seq_len=512)
