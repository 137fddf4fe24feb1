"""Per-device memory of a GRPO step, by arithmetic: params, grads, optimizer, KV cache, activations.

    cost = cost_model.step_memory(QWEN2P5_7B, cost_model.MeshShape(data=8, fsdp=8),
                                  cost_model.RunShape(prompts=32, samples=16, prompt_len=1024,
                                                      max_new_tokens=8192))
    print(cost_model.format_table([("7b", cost)]))

Nothing is compiled: shapes come from the parameter layout of `models/config.py` and the split
of every dim follows `sharding.logical_to_spec` — the project's own rule, where a mesh axis that
does not divide a dim is dropped and that dim replicates. `experiments/cost_model.py` checks
the numbers against `compiled.memory_analysis()` of the real update and sampler.

What is modelled (B = P·G rows, S prompt tokens, T new tokens, Q = S + T, b rows per device):
  params      model weights in `param_dtype`, sharded by the rules (the LoRA base when LoRA)
  frozen_ref  full fine-tuning with a KL term keeps a reference copy of the weights
  trainable   LoRA adapters (full fine-tuning: the params themselves, not counted twice)
  grads       one trainable-sized accumulator (the micro-batch scan carry) plus one micro-batch
              gradient, in the trainable dtype
  optimizer   AdamW's two moments, `opt_dtype` (f32), sharded like the trainable params
  kv_cache    2 · L · b · K · Q · H in the compute dtype; rows split over data × fsdp and KV
              heads over tensor, each only where it divides
  activations the update's backward, per micro-batch of `micro_batch` rows (b_micro per device):
              remat keeps the residual stream per layer ([b, Q, D]) plus one layer's internals;
              no remat keeps every layer's internals. Attention is the plain einsum form of
              `models/layers.py`: its [b, N, Q, Q] f32 probabilities (and their gradients in
              the backward) grow with Q², and dominate at 8k+.
  logits      the log-prob pass builds [b_micro, chunk, V] logits per chunk (f32, three live
              copies: logits, shifted logits, probabilities), never [B, T, V]
  batch       the update's inputs: tokens, masks and log-probs [B, T], prompts [B, S]
"""
import dataclasses
import math
import types
from collections.abc import Sequence

from concise_jax import sharding
from concise_jax.models.config import SMOLLM2_135M, ModelConfig
from concise_jax.models.tiny import tiny_config

GIB = 1024**3
# Per-chip HBM (GiB) of the accelerators the launch guide covers; "fits" leaves 10% headroom.
HBM_GIB = {"v5e": 16, "H100": 80, "v5p": 95, "H200": 141}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# Qwen2.5 shapes from the public model cards / config.json (Qwen/Qwen2.5-{1.5B,7B,32B}-Instruct):
# GQA with head_dim 128, q/k/v biases, SwiGLU, rope theta 1e6; only 1.5B ties its embeddings.
QWEN2P5_1P5B = ModelConfig(
    vocab_size=151936, d_model=1536, n_layers=28, n_heads=12, n_kv_heads=2, head_dim=128,
    mlp_dim=8960, rope_theta=1_000_000.0, rms_eps=1e-6, tie_embeddings=True, qkv_bias=True,
    max_seq_len=32768)
QWEN2P5_7B = ModelConfig(
    vocab_size=152064, d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128,
    mlp_dim=18944, rope_theta=1_000_000.0, rms_eps=1e-6, tie_embeddings=False, qkv_bias=True,
    max_seq_len=32768)
QWEN2P5_32B = ModelConfig(
    vocab_size=152064, d_model=5120, n_layers=64, n_heads=40, n_kv_heads=8, head_dim=128,
    mlp_dim=27648, rope_theta=1_000_000.0, rms_eps=1e-6, tie_embeddings=False, qkv_bias=True,
    max_seq_len=32768)

PRESETS = {
    "tiny": tiny_config(),
    "smollm2-135m": SMOLLM2_135M,
    "qwen2.5-1.5b": QWEN2P5_1P5B,
    "qwen2.5-7b": QWEN2P5_7B,
    "qwen2.5-32b": QWEN2P5_32B,
}

# Same names and order as `train.lora.TARGETS` (number of input axes after the layer axis).
LORA_TARGETS = {"w_q": 1, "w_k": 1, "w_v": 1, "w_o": 2, "w_gate": 1, "w_up": 1, "w_down": 1}


@dataclasses.dataclass(frozen=True)
class MeshShape:
  """(data, fsdp, tensor) inside a slice, times `dcn_data` slices joined over the data axis.

  Multi-slice runs put the across-slice (DCN) factor on the data axis, so the mesh the rules
  see has data = dcn_data · data; parameters are never split across slices.
  """
  data: int = 1
  fsdp: int = 1
  tensor: int = 1
  dcn_data: int = 1

  @property
  def axis_sizes(self) -> dict[str, int]:
    return {"data": self.data * self.dcn_data, "fsdp": self.fsdp, "tensor": self.tensor}

  @property
  def devices(self) -> int:
    return math.prod(self.axis_sizes.values())

  def label(self) -> str:
    ici = f"({self.data},{self.fsdp},{self.tensor})"
    return ici if self.dcn_data == 1 else f"{self.dcn_data}x{ici}"


@dataclasses.dataclass(frozen=True)
class RunShape:
  """One GRPO step: P prompts × G samples, left-padded prompts of S tokens, T new tokens."""
  prompts: int                       # P
  samples: int                       # G
  prompt_len: int                    # S
  max_new_tokens: int                # T
  micro_batch: int = 8               # global rows per gradient micro-batch (0 = all rows)
  lora_rank: int = 0                 # 0 = full fine-tuning
  lora_targets: tuple[str, ...] = tuple(LORA_TARGETS)
  kl: bool = True                    # full fine-tuning keeps a frozen reference copy
  param_dtype: str = "float32"       # master weights
  compute_dtype: str = "float32"     # activations, KV cache
  opt_dtype: str = "float32"         # AdamW moments
  remat: bool = True                 # rematerialise each layer in the backward
  logp_chunk: int = 64               # config.train.logp_chunk
  reward_table: int = 1000           # config.data.num_prompts: replicated per-prompt tables

  @property
  def rows(self) -> int:
    return self.prompts * self.samples

  @property
  def seq(self) -> int:
    return self.prompt_len + self.max_new_tokens


# --------------------------------------------------------------------------- shapes and splits


def param_table(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], tuple[str, ...]]]:
  """"path" → (shape, logical axes) of every parameter, as `models.init_params` lays them out."""
  nl, d, n, k, h, f, v = (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                          cfg.mlp_dim, cfg.vocab_size)
  t = {"embed": ((v, d), ("vocab", "embed")), "final_norm": ((d,), ("embed",))}
  if not cfg.tie_embeddings:
    t["lm_head"] = ((d, v), ("embed", "vocab"))
  q_axes, kv_axes = ("layers", "embed", "heads", "head_dim"), ("layers", "embed", "kv_heads",
                                                               "head_dim")
  t.update({
      "layers/attn_norm": ((nl, d), ("layers", "embed")),
      "layers/w_q": ((nl, d, n, h), q_axes),
      "layers/w_k": ((nl, d, k, h), kv_axes),
      "layers/w_v": ((nl, d, k, h), kv_axes),
      "layers/w_o": ((nl, n, h, d), ("layers", "heads", "head_dim", "embed")),
      "layers/mlp_norm": ((nl, d), ("layers", "embed")),
      "layers/w_gate": ((nl, d, f), ("layers", "embed", "mlp")),
      "layers/w_up": ((nl, d, f), ("layers", "embed", "mlp")),
      "layers/w_down": ((nl, f, d), ("layers", "mlp", "embed")),
  })
  if cfg.qkv_bias:
    t["layers/b_q"] = ((nl, n, h), ("layers", "heads", "head_dim"))
    t["layers/b_k"] = ((nl, k, h), ("layers", "kv_heads", "head_dim"))
    t["layers/b_v"] = ((nl, k, h), ("layers", "kv_heads", "head_dim"))
  return t


def lora_table(cfg: ModelConfig, rank: int, targets: Sequence[str]) -> dict:
  """"layers/<target>/a|b" → (shape, axes) of the adapters, as `train.lora.init_lora` builds."""
  base = param_table(cfg)
  out = {}
  for name in targets:
    shape, axes = base[f"layers/{name}"]
    n_in = LORA_TARGETS[name]
    out[f"layers/{name}/a"] = ((shape[0], *shape[1:1 + n_in], rank),
                               (axes[0], *axes[1:1 + n_in], "lora_rank"))
    out[f"layers/{name}/b"] = ((shape[0], rank, *shape[1 + n_in:]),
                               (axes[0], "lora_rank", *axes[1 + n_in:]))
  return out


def shard_divisors(shape: Sequence[int], axes: Sequence[str | None], mesh: MeshShape,
                   rules: Sequence[tuple] = sharding.DEFAULT_RULES) -> tuple[int, ...]:
  """How many ways each dim is split: `sharding.logical_to_spec`'s rule on this mesh."""
  sizes = mesh.axis_sizes
  # logical_to_spec only reads mesh.shape[axis]: a stand-in keeps this free of devices.
  spec = sharding.logical_to_spec(axes, rules, shape=shape,
                                  mesh=types.SimpleNamespace(shape=sizes))
  out = []
  for entry in spec:
    names = () if entry is None else (entry,) if isinstance(entry, str) else entry
    out.append(math.prod(sizes[a] for a in names))
  return tuple(out)


def per_device_elements(shape: Sequence[int], axes: Sequence[str | None], mesh: MeshShape,
                        rules: Sequence[tuple] = sharding.DEFAULT_RULES) -> int:
  """Elements of one device's shard (shapes divide exactly: non-dividing axes replicate)."""
  return math.prod(s // dv for s, dv in zip(shape, shard_divisors(shape, axes, mesh, rules)))


def table_elements(table: dict, mesh: MeshShape, rules=sharding.DEFAULT_RULES) -> int:
  return sum(per_device_elements(shape, axes, mesh, rules) for shape, axes in table.values())


def param_count(cfg: ModelConfig) -> int:
  """Total parameters (no mesh)."""
  return sum(math.prod(shape) for shape, _ in param_table(cfg).values())


def split_of(size: int, name: str, mesh: MeshShape, rules=sharding.DEFAULT_RULES) -> int:
  """Ways a dim of `size` with logical `name` splits on `mesh` (e.g. rows: "batch")."""
  return shard_divisors((size,), (name,), mesh, rules)[0]


def rows_per_device(run: RunShape, mesh: MeshShape, rules=sharding.DEFAULT_RULES) -> int:
  """Decode rows on one device: P·G / (data · fsdp) where that divides (else replicated)."""
  return run.rows // split_of(run.rows, "batch", mesh, rules)


def micro_rows_per_device(run: RunShape, mesh: MeshShape, rules=sharding.DEFAULT_RULES) -> int:
  """Rows of one gradient micro-batch on one device (`optim.micro_batch` is global rows)."""
  micro = run.rows if run.micro_batch <= 0 or run.micro_batch >= run.rows else run.micro_batch
  return -(-micro // split_of(run.rows, "batch", mesh, rules))


# --------------------------------------------------------------------------- memory


def kv_cache_bytes(cfg: ModelConfig, run: RunShape, mesh: MeshShape,
                   rules=sharding.DEFAULT_RULES) -> int:
  """Keys + values of every layer for B rows × (S + T) slots, one device's shard."""
  shape = (run.rows, cfg.n_kv_heads, run.seq, cfg.head_dim)
  per_layer = per_device_elements(shape, ("batch", "kv_heads", "length", "head_dim"), mesh, rules)
  return 2 * cfg.n_layers * per_layer * DTYPE_BYTES[run.compute_dtype]


def layer_activation_bytes(cfg: ModelConfig, run: RunShape, mesh: MeshShape, rows: int,
                           rules=sharding.DEFAULT_RULES) -> int:
  """One decoder layer's forward values that its backward reads, for `rows` sequences.

  Per token: residual and norms (4 D), q/k/v and attention output ((2N + 2K) H), gate, up,
  activation and their product (4 F), in the compute dtype; per query, the N·Q attention
  probabilities in f32 (`models/layers.py` takes the softmax in f32). Heads and F split over
  tensor where they divide.
  """
  n, k, f = _tensor_split(cfg, mesh, rules)
  cdt = DTYPE_BYTES[run.compute_dtype]
  per_token = (4 * cfg.d_model + (2 * n + 2 * k) * cfg.head_dim + 4 * f) * cdt
  return rows * run.seq * (per_token + n * run.seq * 4)


def _tensor_split(cfg: ModelConfig, mesh: MeshShape, rules) -> tuple[int, int, int]:
  """Heads, KV heads and MLP width on one device (split over tensor where it divides)."""
  tp = lambda size, name: size // split_of(size, name, mesh, rules)
  return tp(cfg.n_heads, "heads"), tp(cfg.n_kv_heads, "kv_heads"), tp(cfg.mlp_dim, "mlp")


def activation_bytes(cfg: ModelConfig, run: RunShape, mesh: MeshShape,
                     rules=sharding.DEFAULT_RULES) -> int:
  """The update's backward working set for one micro-batch (see the module docstring).

  remat:    the residual stream entering each layer ([b, Q, D] × L), plus one layer's
            recomputed forward values; no remat: every layer's forward values. Either way the
            softmax backward of one layer adds two more [b, N, Q, Q] f32 buffers (the
            gradients of the probabilities and of the scores), and the causal mask is [b, Q, Q].
  """
  rows = micro_rows_per_device(run, mesh, rules)
  layer = layer_activation_bytes(cfg, run, mesh, rows, rules)
  n = _tensor_split(cfg, mesh, rules)[0]
  softmax_grads = 2 * rows * n * run.seq * run.seq * 4
  mask = rows * run.seq * run.seq
  if run.remat:
    residual = cfg.n_layers * rows * run.seq * cfg.d_model * DTYPE_BYTES[run.compute_dtype]
    return residual + layer + softmax_grads + mask
  return cfg.n_layers * layer + softmax_grads + mask


def logits_bytes(cfg: ModelConfig, run: RunShape, mesh: MeshShape,
                 rules=sharding.DEFAULT_RULES) -> int:
  """One log-prob chunk: [b_micro, chunk, V / tensor] f32 logits, three live copies."""
  rows = micro_rows_per_device(run, mesh, rules)
  vocab = cfg.vocab_size // split_of(cfg.vocab_size, "vocab", mesh, rules)
  return 3 * rows * min(run.logp_chunk, run.max_new_tokens) * vocab * 4


def batch_bytes(run: RunShape, mesh: MeshShape, rules=sharding.DEFAULT_RULES) -> int:
  """The update's inputs per device: 4 [B, T] (tokens, mask, old log-prob, loss mask),
  2 [B, S] (prompt tokens and mask), ~11 [B] scalars; 4 bytes each."""
  rows = rows_per_device(run, mesh, rules)
  return rows * 4 * (4 * run.max_new_tokens + 2 * run.prompt_len + 11)


def step_memory(cfg: ModelConfig, mesh: MeshShape, run: RunShape,
                rules=sharding.DEFAULT_RULES) -> dict[str, int]:
  """Per-device bytes of every component, plus the three totals that matter:

    resident     = params + frozen_ref + trainable + optimizer + reward tables: the train
                   state and frozen weights, on the device through rollout and update alike
    rollout_peak = resident + kv_cache + sampler logits [b, V] f32 (+ the merged weights the
                   sampler decodes with, under LoRA)
    update_peak  = resident + batch + grads + activations + logits
  """
  weights = table_elements(param_table(cfg), mesh, rules) * DTYPE_BYTES[run.param_dtype]
  lora = run.lora_rank > 0
  trainable = (table_elements(lora_table(cfg, run.lora_rank, run.lora_targets), mesh, rules)
               * DTYPE_BYTES[run.param_dtype] if lora else weights)
  trainable_elems = trainable // DTYPE_BYTES[run.param_dtype]
  out = {
      "params": weights,
      "frozen_ref": weights if (run.kl and not lora) else 0,
      "trainable": trainable if lora else 0,
      "grads": 2 * trainable,
      "optimizer": 2 * trainable_elems * DTYPE_BYTES[run.opt_dtype],
      "batch": batch_bytes(run, mesh, rules),
      "reward_tables": 16 * run.reward_table,
      "kv_cache": kv_cache_bytes(cfg, run, mesh, rules),
      "activations": activation_bytes(cfg, run, mesh, rules),
      "logits": logits_bytes(cfg, run, mesh, rules),
      "decode_rows": rows_per_device(run, mesh, rules),
  }
  out["resident"] = sum(out[k] for k in ("params", "frozen_ref", "trainable", "optimizer",
                                          "reward_tables"))
  out["rollout_peak"] = (out["resident"] + out["kv_cache"] + (weights if lora else 0)
                         + out["decode_rows"] * cfg.vocab_size * 4)
  out["update_peak"] = out["resident"] + sum(out[k] for k in ("batch", "grads", "activations",
                                                               "logits"))
  return out


# --------------------------------------------------------------------------- tables

MEMORY_COLUMNS = ("params", "frozen_ref", "trainable", "optimizer", "grads", "kv_cache",
                  "activations", "logits", "resident", "rollout_peak", "update_peak")


def fmt_bytes(n: float) -> str:
  """Bytes as GiB with 2 decimals above 0.1 GiB, MiB with 1 decimal below, KiB below that."""
  if n >= 0.1 * GIB:
    return f"{n / GIB:.2f}G"
  if n >= 1024**2 / 10:
    return f"{n / 1024**2:.1f}M"
  return f"{n / 1024:.1f}K"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  """A GitHub markdown table (the docs paste these verbatim)."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def fits(mem: dict, headroom: float = 0.9) -> str:
  """Chips whose HBM holds both peaks of the step with 10% to spare ("-" if none)."""
  peak = max(mem["rollout_peak"], mem["update_peak"])
  return ",".join(c for c, gib in HBM_GIB.items() if peak <= headroom * gib * GIB) or "-"


def format_table(entries: Sequence[tuple[str, dict]],
                 columns: Sequence[str] = MEMORY_COLUMNS) -> str:
  """(label, `step_memory` dict) rows → markdown, bytes per device."""
  rows = [[label, *(fmt_bytes(mem[c]) for c in columns), mem["decode_rows"], fits(mem)]
          for label, mem in entries]
  return markdown_table(["case", *columns, "decode rows/dev", "fits"], rows)
