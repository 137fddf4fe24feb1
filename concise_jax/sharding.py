"""Mesh construction and logical-axis → mesh-axis mapping; the only module naming mesh axes.

Code annotates arrays with logical names ("batch", "embed", "mlp", ...); the config's rules
table maps each name to a mesh axis, a tuple of mesh axes, or None (replicated). A new layout
is therefore a config change, and a one-device mesh (every rule trivially satisfied) runs the
same program as a pod.
"""
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Default logical rules: activations over every data-like axis, params FSDP over the model dim
# and tensor-parallel over heads / MLP / vocab. Unlisted names are replicated.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("vocab", "tensor"),
    ("head_dim", None),
    ("layers", None),
    ("length", None),
    ("lora_rank", None),
)


def _resolve_shape(shape: Sequence[int], available: int, what: str) -> list[int]:
  shape = [int(s) for s in shape]
  if len(shape) != len(MESH_AXES):
    raise ValueError(f"{what} {shape} needs one entry per axis {MESH_AXES}")
  if shape.count(-1) > 1:
    raise ValueError(f"{what} {shape}: at most one -1")
  if -1 in shape:
    rest = math.prod(s for s in shape if s != -1)
    shape[shape.index(-1)] = available // max(rest, 1)
  n = math.prod(shape)
  if n < 1 or n > available:
    raise ValueError(f"{what} {shape} needs {n} devices; {available} available")
  return shape


def rollout_rules(rules: Sequence) -> tuple:
  """The training rules with parameters' fsdp splits dropped ("embed" and any other name mapped
  to fsdp replicate), batch and tensor splits kept: the layout decode prefers when one full
  weight copy per tensor shard fits, since FSDP-split weights cost collectives at every token."""
  out = []
  for name, target in freeze_rules(rules):
    if name != "batch":
      axes = (target,) if isinstance(target, str) else tuple(target or ())
      axes = tuple(a for a in axes if a != "fsdp")
      target = None if not axes else axes[0] if len(axes) == 1 else axes
    out.append((name, target))
  return tuple(out)


def make_mesh(shape: Sequence[int], axes: Sequence[str] = MESH_AXES, *,
              dcn_shape: Sequence[int] | None = None) -> jax.sharding.Mesh:
  """A topology-aware (data, fsdp, tensor) mesh; one entry may be -1 ("all remaining devices").

  Single slice: `jax.make_mesh` orders devices by the physical topology (ICI rings on TPU).
  Multi-slice (`dcn_shape` with a product > 1, e.g. (2, 1, 1) for data parallelism across two
  TPU slices, or across hosts of a GPU cluster, where each process is one granule): `mesh_utils.create_hybrid_device_mesh`, so only the DCN factor of each axis
  crosses slices; `shape` is then the per-slice (ICI) shape and the mesh is their product.

  A mesh smaller than the device count takes the first devices (sorted by process, then id),
  which lets a (1, 1, 1) mesh run in a process that simulates 8 CPU devices, as tests do.
  """
  if tuple(axes) != MESH_AXES:
    raise ValueError(f"mesh axes must be {MESH_AXES}, got {tuple(axes)}")
  axis_types = (jax.sharding.AxisType.Auto,) * len(axes)
  dcn = [1] * len(axes) if dcn_shape is None else [int(d) for d in dcn_shape]
  if len(dcn) != len(axes) or min(dcn) < 1:
    raise ValueError(f"mesh dcn_shape {tuple(dcn)} needs one positive entry per axis {MESH_AXES}")
  slices = math.prod(dcn)
  if slices > 1:
    ici = _resolve_shape(shape, jax.device_count() // slices, "mesh shape (per slice)")
    # TPU slices carry `slice_index`; GPU / CPU clusters have one granule per process.
    per_process = not hasattr(jax.devices()[0], "slice_index")
    devices = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices=jax.devices(),
                                                   process_is_granule=per_process)
    return jax.sharding.Mesh(devices, tuple(axes), axis_types=axis_types)
  shape = _resolve_shape(shape, jax.device_count(), "mesh shape")
  n = math.prod(shape)
  devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  if n < len(devices):
    devices = devices[:n]
  return jax.make_mesh(tuple(shape), tuple(axes), axis_types=axis_types, devices=devices)


def logical_to_spec(names: Sequence[str | None], rules: Sequence[tuple], *,
                    shape: Sequence[int] | None = None,
                    mesh: jax.sharding.Mesh | None = None) -> PartitionSpec:
  """PartitionSpec for an array whose dims carry these logical names.

  A mesh axis already used by an earlier dim is dropped for later dims (a spec may name each
  mesh axis once), so e.g. ("embed", "embed") stays valid. Given the array's `shape` and the
  `mesh`, a dim keeps only the leading mesh axes whose sizes divide it (the rest replicate):
  SmolLM2's 3 KV heads cannot split over tensor=2, and that must not stop the run.
  """
  table: Mapping[str, Any] = dict(rules)
  used: set[str] = set()
  spec = []
  for dim, name in enumerate(names):
    target = table.get(name) if name is not None else None
    axes = (target,) if isinstance(target, str) else tuple(target or ())
    axes = tuple(a for a in axes if a not in used)
    if shape is not None and mesh is not None:
      axes = _dividing_prefix(axes, shape[dim], mesh)
    used.update(axes)
    spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return PartitionSpec(*spec)


def _dividing_prefix(axes: tuple, size: int, mesh: jax.sharding.Mesh) -> tuple:
  """The longest prefix of `axes` whose mesh sizes multiply to a divisor of `size`."""
  keep, product = [], 1
  for a in axes:
    if size % (product * mesh.shape[a]):
      break
    product *= mesh.shape[a]
    keep.append(a)
  return tuple(keep)


def _is_axes(x) -> bool:
  return isinstance(x, tuple) and all(isinstance(n, (str, type(None))) for n in x)


def tree_shardings(mesh: jax.sharding.Mesh, axes_tree: Any, rules: Sequence[tuple],
                   shapes_tree: Any = None) -> Any:
  """NamedSharding for every leaf of a tree of logical-axis tuples (e.g. `param_axes(cfg)`).

  `shapes_tree` (arrays or ShapeDtypeStructs, same structure) lets dims that a mesh axis does
  not divide fall back to replication (see `logical_to_spec`).
  """
  if shapes_tree is None:
    return jax.tree.map(lambda names: NamedSharding(mesh, logical_to_spec(names, rules)),
                        axes_tree, is_leaf=_is_axes)
  return jax.tree.map(
      lambda names, x: NamedSharding(mesh, logical_to_spec(names, rules, shape=x.shape,
                                                           mesh=mesh)),
      axes_tree, shapes_tree, is_leaf=_is_axes)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Sharding of scalars, keys and small tables: a full copy on every device."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: jax.sharding.Mesh, rules: Sequence[tuple]) -> NamedSharding:
  """Leading-axis ("batch") sharding; as a pytree prefix it covers every per-sample leaf."""
  return NamedSharding(mesh, logical_to_spec(("batch",), rules))


def freeze_rules(rules: Sequence) -> tuple:
  """The rules table as nested tuples (configs may hand back lists), hashable for jit."""
  return tuple((name, tuple(t) if isinstance(t, (list, tuple)) else t) for name, t in rules)


@dataclasses.dataclass(frozen=True)
class Layout:
  """A mesh and its rules table as one hashable value: jitted functions take it as a static
  argument and pin intermediates (e.g. the sampler's KV cache) to logical layouts with it."""
  mesh: jax.sharding.Mesh
  rules: tuple

  @classmethod
  def of(cls, mesh: jax.sharding.Mesh, rules: Sequence) -> "Layout":
    return cls(mesh, freeze_rules(rules))

  def sharding(self, names: Sequence[str | None], shape: Sequence[int]) -> NamedSharding:
    """Sharding of an array of `shape` whose dims carry logical `names`."""
    return NamedSharding(self.mesh, logical_to_spec(names, self.rules, shape=shape,
                                                    mesh=self.mesh))

  def constrain(self, x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """`with_sharding_constraint` by logical names (inside jit)."""
    return jax.lax.with_sharding_constraint(x, self.sharding(names, x.shape))
