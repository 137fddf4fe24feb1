"""Mesh construction and logical-axis → mesh-axis mapping; the only module naming mesh axes.

Code annotates arrays with logical names ("batch", "embed", "mlp", ...); the config's rules
table maps each name to a mesh axis, a tuple of mesh axes, or None (replicated). A new layout
is therefore a config change, and a one-device mesh (every rule trivially satisfied) runs the
same program as a pod.
"""
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
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


def make_mesh(shape: Sequence[int], axes: Sequence[str] = MESH_AXES) -> jax.sharding.Mesh:
  """A mesh over the first prod(shape) devices; one entry may be -1 ("all remaining devices").

  Taking a prefix of the devices (instead of requiring all of them) lets a (1, 1, 1) mesh run
  in a process that simulates 8 CPU devices, as the tests do.
  """
  shape = [int(s) for s in shape]
  if len(shape) != len(axes):
    raise ValueError(f"mesh shape {shape} needs one entry per axis {tuple(axes)}")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {shape}: at most one -1")
  if -1 in shape:
    rest = math.prod(s for s in shape if s != -1)
    shape[shape.index(-1)] = jax.device_count() // rest
  n = math.prod(shape)
  if n < 1 or n > jax.device_count():
    raise ValueError(f"mesh shape {shape} needs {n} devices; {jax.device_count()} available")
  devices = np.asarray(jax.devices()[:n]).reshape(shape)
  return jax.sharding.Mesh(devices, tuple(axes),
                           axis_types=(jax.sharding.AxisType.Auto,) * len(axes))


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
