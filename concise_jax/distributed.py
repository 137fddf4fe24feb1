"""Multi-process plumbing: start-up, host values ↔ global arrays, and which rows a process owns.

JAX runs one process per host (multi-controller). Every process runs the same program on the
same global batch; each holds the shards of its own devices. The host side of a step — decoding
completions to text, verifying answers, host features — is done by each process for the rows it
owns only, and the small per-row results are all-gathered, so group-relative rewards see whole
groups exactly as on one process. With one process every function here is a cheap identity.
"""
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging
from jax.experimental import multihost_utils


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False) -> None:
  """Joins a multi-process run before any other JAX call.

  Explicit: `coordinator_address="host:port"`, `num_processes`, `process_id` (local CPU runs,
  or any cluster). `auto=True` calls `jax.distributed.initialize()` with no arguments, which
  detects TPU pods and SLURM / Open MPI GPU clusters itself. Neither: a single process.
  CPU processes exchange collectives over gloo.
  """
  if not coordinator_address and not auto:
    return
  # Only the CPU backend reads this; TPU / GPU collectives are unaffected.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator_address:
    if num_processes is None or process_id is None:
      raise ValueError("--coordinator_address needs --num_processes and --process_id")
    jax.distributed.initialize(coordinator_address, num_processes=num_processes,
                               process_id=process_id)
  else:
    jax.distributed.initialize()
  logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def define_process_flags() -> Callable[[], None]:
  """Defines --coordinator_address / --num_processes / --process_id / --distributed (shared by
  `concise_jax.main` and `concise_jax.eval`); returns the call that joins the run they name."""
  coordinator = flags.DEFINE_string(
      "coordinator_address", None, "host:port of process 0 for a multi-process run (with "
      "--num_processes and --process_id); every process runs the same command.")
  num_processes = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
  process_id = flags.DEFINE_integer("process_id", None, "This process's index, 0 .. N-1.")
  auto = flags.DEFINE_boolean(
      "distributed", False, "Join a multi-process run found by jax.distributed.initialize()'s "
      "cluster detection (TPU pods, SLURM, Open MPI) instead of the explicit flags.")
  return lambda: initialize(coordinator.value, num_processes.value, process_id.value,
                            auto=auto.value)


def is_lead() -> bool:
  """Process 0 writes config.json, metrics, TensorBoard and eval files; the others don't."""
  return jax.process_index() == 0


@jax.jit
def _copy(tree):
  # A jitted copy returns buffers XLA owns: never an alias of a host array or of another input.
  return jax.tree.map(jnp.copy, tree)


def put(tree: Any, shardings: Any) -> Any:
  """Global arrays from host values every process holds identically (params, batches, keys).

  Each process supplies only the shards of its own devices (`make_array_from_callback`), which
  is what multi-process jit needs ("non-trivial shardings for numpy inputs" are not allowed).
  The result is copied into fresh buffers, so it can be donated without touching `tree`.
  `shardings` is one sharding for every leaf or a matching tree.
  """
  host = fetch(tree)
  if isinstance(shardings, jax.sharding.Sharding):
    shardings = jax.tree.map(lambda _: shardings, host)
  return _copy(jax.tree.map(_put_leaf, host, shardings))


def _put_leaf(x, sh):
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    data = np.asarray(jax.random.key_data(x))
    placed = jax.make_array_from_callback(data.shape, sh, lambda idx: data[idx])
    return jax.random.wrap_key_data(placed, impl=jax.random.key_impl(x))
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sh, lambda idx: x[idx])


def fetch(tree: Any) -> Any:
  """Host numpy copies of every leaf, whole, on every process (gathering across processes).
  Typed PRNG keys stay keys (on the local default device)."""
  def one(x):
    if not isinstance(x, jax.Array):
      return x
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(jnp.asarray(one(jax.random.key_data(x))),
                                      impl=jax.random.key_impl(x))
    if x.is_fully_addressable:
      return np.asarray(jax.device_get(x))
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return jax.tree.map(one, tree)


def row_owner(sharding: jax.sharding.Sharding, num_rows: int) -> np.ndarray:
  """[num_rows] index of the process that handles each row on the host: the lowest-numbered
  process holding a shard with that row (rows replicated over processes are handled once)."""
  owner = np.full((num_rows,), jax.process_count(), np.int32)
  for device, index in sharding.devices_indices_map((num_rows,)).items():
    rows = np.arange(num_rows)[index[0]]
    owner[rows] = np.minimum(owner[rows], device.process_index)
  return owner


def owned_rows(sharding: jax.sharding.Sharding, num_rows: int) -> np.ndarray:
  """Row indices this process handles on the host (all rows with one process)."""
  if jax.process_count() == 1:
    return np.arange(num_rows)
  return np.flatnonzero(row_owner(sharding, num_rows) == jax.process_index())


def combine_rows(local: Any, rows: np.ndarray, num_rows: int,
                 owner: np.ndarray | None = None) -> Any:
  """Whole [num_rows, ...] host arrays from each process's values for its `rows`.

  `local` leaves are [len(rows), ...] numpy arrays; every process passes the same tree
  structure. With one process this only scatters into place.
  """
  def full(x):
    x = np.asarray(x)
    out = np.zeros((num_rows,) + x.shape[1:], x.dtype)
    out[rows] = x
    return out
  scattered = jax.tree.map(full, local)
  if jax.process_count() == 1:
    return scattered
  if owner is None:
    raise ValueError("combine_rows across processes needs the row owner map")
  gathered = multihost_utils.process_allgather(scattered, tiled=False)   # [processes, rows, ...]
  return jax.tree.map(lambda g: g[owner, np.arange(num_rows)], gathered)


def agree_any(flag: bool) -> bool:
  """True on every process if any process passes True (e.g. a preemption signal)."""
  if jax.process_count() == 1:
    return bool(flag)
  flags = multihost_utils.process_allgather(np.asarray([flag], np.int32))
  return bool(np.any(flags))


def shared_buffers(donated: Any, *others: Any) -> list[str]:
  """Paths of leaves of `donated` whose device buffers also back a leaf of `others`.

  A jitted call that donates `donated` while reading `others` would read freed memory (XLA
  reports "f(donate(a), a)"; on CPU it can crash); the trainer checks this once at set-up.
  """
  def pointers(tree) -> dict[int, str]:
    out = {}
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
      if isinstance(x, jax.Array):
        for shard in x.addressable_shards:
          out[shard.data.unsafe_buffer_pointer()] = jax.tree_util.keystr(path)
    return out
  mine = pointers(donated)
  theirs: dict[int, str] = {}
  for tree in others:
    theirs.update(pointers(tree))
  return sorted({mine[p] for p in mine.keys() & theirs.keys()})

