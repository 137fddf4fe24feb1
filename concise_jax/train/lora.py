"""LoRA adapters on the stacked decoder weights (Hu et al. 2021, arXiv:2106.09685).

For a target weight W [L, *in, *out] the adapter holds A [L, *in, r] and B [L, r, *out] and the
model runs on W + (alpha / r) · A @ B. B starts at zero, so the adapted model starts exactly at
the base model; only A and B are trained, the base stays a frozen input of the update.
Low-rank RL updates track full fine-tuning closely (RL gradients are low-rank in practice),
at a fraction of the optimizer memory.

Sampling and export run on merged weights (`merge`: one small matmul per target, then the
sampler is unchanged). The training forward instead runs a side branch x·A·B next to each
frozen W (`side_branch`; `models.layers.linear`): same outputs, but the backward never forms
the full-size gradient of W, only the rank-r ones.
"""
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

# Targetable names under params["layers"] → number of input axes after the layer axis
# (w_o [L, N, H, D] reads N·H inputs; every other target reads D or F).
TARGETS = {"w_q": 1, "w_k": 1, "w_v": 1, "w_o": 2, "w_gate": 1, "w_up": 1, "w_down": 1}


def parse_targets(targets: str | Sequence[str]) -> tuple[str, ...]:
  """"w_q,w_v" (the config form) or a sequence → validated tuple of target names."""
  names = [n.strip() for n in targets.split(",")] if isinstance(targets, str) else list(targets)
  names = [n for n in names if n]
  unknown = [n for n in names if n not in TARGETS]
  if unknown or not names:
    raise ValueError(f"unknown LoRA target(s) {unknown or names!r}; valid choices: "
                     f"{', '.join(sorted(TARGETS))}")
  return tuple(dict.fromkeys(names))


def init_lora(params: dict, key: jax.Array, *, rank: int, targets: Sequence[str]) -> dict:
  """Adapters {"layers": {name: {"a", "b"}}} for `targets`; A ~ N(0, 1/fan_in), B = 0."""
  out = {}
  for i, name in enumerate(targets):
    w = params["layers"][name]
    n_in = TARGETS[name]
    in_shape, out_shape = w.shape[1:1 + n_in], w.shape[1 + n_in:]
    a = jax.random.normal(jax.random.fold_in(key, i), (w.shape[0], *in_shape, rank), w.dtype)
    out[name] = {"a": a / math.sqrt(math.prod(in_shape)),
                 "b": jnp.zeros((w.shape[0], rank, *out_shape), w.dtype)}
  return {"layers": out}


def lora_axes(param_axes: dict, targets: Sequence[str]) -> dict:
  """Logical axes of the adapters, derived from the base weights' axes (for sharding)."""
  out = {}
  for name in targets:
    axes, n_in = param_axes["layers"][name], TARGETS[name]
    out[name] = {"a": (axes[0], *axes[1:1 + n_in], "lora_rank"),
                 "b": (axes[0], "lora_rank", *axes[1 + n_in:])}
  return {"layers": out}


def merge(base: dict, adapters: dict, *, alpha: float, rank: int) -> dict:
  """Full params with W + (alpha / rank) · A @ B on every adapted weight (export, sampling)."""
  scale = alpha / rank
  layers = dict(base["layers"])
  for name, ab in adapters["layers"].items():
    a, b = ab["a"], ab["b"]
    a_lir = a.reshape(a.shape[0], -1, a.shape[-1])
    b_lro = b.reshape(b.shape[0], b.shape[1], -1)
    delta = jnp.einsum("lir,lro->lio", a_lir, b_lro).reshape(layers[name].shape)
    layers[name] = layers[name] + (scale * delta).astype(layers[name].dtype)
  return {**base, "layers": layers}


def side_branch(base: dict, adapters: dict, *, alpha: float, rank: int) -> dict:
  """Base params plus params["layers"]["lora"][name] = {"a": A, "b": (alpha / rank) · B}.

  `models.forward` adds x·A·B to each adapted projection: equal to running on `merge(...)`,
  with cheaper gradients (see the module docstring).
  """
  scale = alpha / rank
  lora = {name: {"a": ab["a"], "b": scale * ab["b"]} for name, ab in adapters["layers"].items()}
  return {**base, "layers": {**base["layers"], "lora": lora}}
