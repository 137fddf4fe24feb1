"""DLER's update-selective weight merging (Liu et al., arXiv:2510.15110).

Training-free: keep only the largest-magnitude part of the RL update and shrink it,

    delta = θ_rl − θ_base;  mask = |delta| in the top `top_fraction` of magnitudes
    θ = θ_base + scale · mask · delta          (paper: top 25 %, scale 0.7)

which the paper uses when RL data is too easy for the base model and the plain RL checkpoint
loses accuracy; plain averaging / interpolation were reported worse. Pure jnp over any pair of
param pytrees with the same structure.
"""
import math

import jax
import jax.numpy as jnp


def _num_kept(size: int, top_fraction: float) -> int:
  """k = ceil(top_fraction · size); round() first so 0.25 · 4 is not 1.0000000001 → 2."""
  return min(size, math.ceil(round(top_fraction * size, 9)))


def magnitude_threshold(abs_n: jax.Array, top_fraction: float) -> jax.Array:
  """[] the k-th largest value of a flat array, k = ceil(top_fraction · n); +inf when k = 0.

  Entries ≥ the threshold are kept, so ties at the cut are all kept (order-independent).
  """
  k = _num_kept(abs_n.size, top_fraction)
  if k == 0:
    return jnp.array(jnp.inf, abs_n.dtype)
  return jnp.sort(abs_n.reshape(-1))[abs_n.size - k]


def update_masks(base, tuned, *, top_fraction: float = 0.25, per_tensor: bool = True):
  """Pytree of bool masks: which entries of `tuned − base` are among the largest updates.

  Args:
    base, tuned: param pytrees of the same structure (float leaves).
    top_fraction: share of entries kept (per tensor, or over the whole tree).
    per_tensor: True ranks within each leaf; False ranks all leaves together. Inferred: the
      paper does not say which; per tensor is our
      default because it keeps every layer's most-changed weights.

  Returns:
    A pytree like `base` with bool leaves.
  """
  abs_delta = jax.tree.map(lambda b, t: jnp.abs(t.astype(jnp.float32) - b.astype(jnp.float32)),
                           base, tuned)
  if per_tensor:
    return jax.tree.map(lambda a: a >= magnitude_threshold(a, top_fraction), abs_delta)
  flat = jnp.concatenate([a.reshape(-1) for a in jax.tree.leaves(abs_delta)])
  threshold = magnitude_threshold(flat, top_fraction)
  return jax.tree.map(lambda a: a >= threshold, abs_delta)


def update_selective_merge(base, tuned, *, top_fraction: float = 0.25, scale: float = 0.7,
                           per_tensor: bool = True):
  """θ_base + scale · mask · (θ_tuned − θ_base), leaves cast back to the base dtype.

  Args:
    base: the pre-RL params (pytree).
    tuned: the RL (DLER) params, same structure.
    top_fraction: share of update entries kept by magnitude (paper: 0.25).
    scale: factor on the kept update (paper: 0.7).
    per_tensor: rank magnitudes within each leaf (True) or over the whole tree (False).

  Returns:
    The merged params, same structure and dtypes as `base`.
  """
  masks = update_masks(base, tuned, top_fraction=top_fraction, per_tensor=per_tensor)

  def merge(b, t, m):
    b32 = b.astype(jnp.float32)
    return (b32 + scale * jnp.where(m, t.astype(jnp.float32) - b32, 0.0)).astype(b.dtype)

  return jax.tree.map(merge, base, tuned, masks)
