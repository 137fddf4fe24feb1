"""Orbax checkpoints in `workdir/ckpt`: the whole TrainState plus a JSON item, verified.

Each save holds `state` (params, optimizer state, reward state, rng, step — exact bits) and
`meta` (the data iterator's position, the resolved config). Restoring into an abstract target
that carries the current shardings lets a checkpoint land on a different mesh.

Verification. Orbax keeps a crc32c only over the zarr shard *index*, not the data, so a flipped
byte in a parameter file restores silently. Each step therefore records the size and SHA-256 of
every file it wrote in `CHECKSUMS.json`, written into orbax's temporary directory just before
orbax renames it to the final step directory: a step is visible only with its checksums, and a
step without them is an unfinished write. `restore` verifies the checksums first; a damaged
newest step is reported in one line, moved to `ckpt/damaged/`, and the newest intact step is
restored instead (`on_damaged="stop"` raises instead). Corrupt weights are never loaded.

Retention is ours, not orbax's `max_to_keep`: after each save has finished, the manager keeps
the newest `keep` steps at or below the newest step this run wrote (never fewer than one, never
a step above it: those are another run's) plus every `keep_every`-th step.
"""
import glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp

from concise_jax.train.state import TrainState

CHECKSUMS = "CHECKSUMS.json"
DAMAGED_DIR = "damaged"
_CHUNK = 1 << 22   # hashing reads 4 MiB at a time
_UNSEALED = (CHECKSUMS, "commit_success.txt", "_CHECKPOINT_METADATA")


class CheckpointError(RuntimeError):
  """No usable checkpoint: damaged with `on_damaged="stop"`, none intact, or one that does not
  fit this run's config. The message is one line naming the step and the problem."""


class Manager(ocp.CheckpointManager):
  """A CheckpointManager that seals each step with checksums and prunes by our policy.

  Attributes:
    keep: newest steps kept (>= 1) at or below the newest step this run wrote.
    keep_every: > 0 also keeps every step divisible by it (long runs); 0 = off.
    written: steps this manager saved (the run's own steps).
  """

  def __init__(self, directory: str, *, keep: int = 3, keep_every: int = 0):
    if keep < 1:
      raise ValueError(f"keep={keep}: at least one checkpoint must be kept")
    self.keep, self.keep_every, self.written = keep, keep_every, []
    self._pending: int | None = None
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None, create=True,
        async_options=ocp.AsyncOptions(post_finalization_callback=self._seal))
    super().__init__(directory, options=options, item_names=("state", "meta"))

  def _seal(self) -> None:
    """Orbax's post-finalization hook (background thread): checksums into the step's
    temporary directory, before its rename makes the step visible."""
    if self._pending is None or jax.process_index() != 0:
      return
    step_dir = _unsealed_dir(str(self.directory), self._pending)
    if step_dir is not None:
      write_checksums(step_dir)

  def begin_save(self, step: int) -> None:
    """Waits for the previous save, prunes, and marks `step` as the one being sealed."""
    self.wait_until_finished()
    self.prune()
    self._pending = step
    self.written.append(step)

  def prune(self) -> list[int]:
    """Deletes steps outside the retention policy; returns them. Call with no save in flight."""
    if not self.written:
      return []
    self.reload()
    newest_own = max(self.written)
    steps = sorted(s for s in self.all_steps() if s <= newest_own)
    kept = set(steps[-self.keep:])
    if self.keep_every > 0:
      kept |= {s for s in steps if s % self.keep_every == 0}
    doomed = [s for s in steps if s not in kept]
    for s in doomed:
      self.delete(s)
    return doomed

  def close(self) -> None:
    self.wait_until_finished()
    self._pending = None
    self.prune()
    super().close()


def make_manager(workdir: str, *, keep: int = 3, keep_every: int = 0) -> Manager:
  """A verified manager over `workdir/ckpt` (see `Manager`)."""
  return Manager(os.path.abspath(os.path.join(workdir, "ckpt")), keep=keep,
                 keep_every=keep_every)


def _unsealed_dir(directory: str, step: int) -> str | None:
  """Orbax's temporary directory of `step` (local file systems), else the step directory
  itself (object stores write in place)."""
  for path in sorted(glob.glob(os.path.join(directory, f"{step}.orbax-checkpoint-tmp*"))):
    if os.path.isdir(path):
      return path
  path = os.path.join(directory, str(step))
  return path if os.path.isdir(path) else None


def _files(step_dir: str) -> list[str]:
  """Relative paths of every file under `step_dir` except the manifest and the two files orbax
  updates after sealing: the commit marker and the step metadata (save/commit timestamps)."""
  out = []
  for root, _, files in os.walk(step_dir):
    for name in files:
      rel = os.path.relpath(os.path.join(root, name), step_dir)
      if rel not in _UNSEALED:
        out.append(rel)
  return sorted(out)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      h.update(chunk)
  return h.hexdigest()


def write_checksums(step_dir: str) -> None:
  """Records {relative path: [size, sha256]} of every file of a step, atomically."""
  files = {rel: [os.path.getsize(os.path.join(step_dir, rel)),
                 _sha256(os.path.join(step_dir, rel))] for rel in _files(step_dir)}
  tmp = os.path.join(step_dir, CHECKSUMS + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump({"algorithm": "sha256", "files": files}, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(step_dir, CHECKSUMS))


def verify_step(directory: str, step: int) -> str | None:
  """None if every file recorded for `step` is present with its size and SHA-256, else the
  first problem found (short text naming the file)."""
  step_dir = os.path.join(directory, str(step))
  try:
    with open(os.path.join(step_dir, CHECKSUMS), encoding="utf-8") as f:
      files = json.load(f)["files"]
  except FileNotFoundError:
    return f"no {CHECKSUMS} (an unfinished write, or saved before checkpoints were verified)"
  except (ValueError, KeyError, TypeError) as e:
    return f"unreadable {CHECKSUMS} ({e})"
  for rel, (size, digest) in sorted(files.items()):
    path = os.path.join(step_dir, rel)
    if not os.path.isfile(path):
      return f"{rel} is missing"
    if os.path.getsize(path) != size:
      return f"{rel} has {os.path.getsize(path)} bytes, {size} were written"
    if _sha256(path) != digest:
      return f"{rel} fails its SHA-256 check"
  return None


def _move_aside(directory: str, step: int) -> str:
  """Moves a damaged step out of orbax's view (kept for inspection); returns its new path."""
  target = os.path.join(directory, DAMAGED_DIR, f"{step}-{time.strftime('%Y%m%dT%H%M%S')}")
  os.makedirs(os.path.dirname(target), exist_ok=True)
  shutil.move(os.path.join(directory, str(step)), target)
  return target


def save(manager: Manager, state: TrainState, meta: dict) -> None:
  """Saves at `state.step`; returns once the arrays are copied off the devices (the write
  finishes in the background, so the state may be donated to the next update right away)."""
  step = int(jax.device_get(state.step))
  manager.begin_save(step)
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             meta=ocp.args.JsonSave(meta)), force=True)


def abstract_like(state: TrainState) -> Any:
  """ShapeDtypeStructs with the leaves' shardings: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      state)


def newest_intact_step(manager: ocp.CheckpointManager, *, on_damaged: str = "fallback",
                       report: Callable[[str], None] = print) -> int | None:
  """The newest step whose checksums hold, or None when there are no steps.

  A damaged newer step is reported in one line and moved to `ckpt/damaged/` (so the run can
  write that step again); with `on_damaged="stop"` it raises `CheckpointError` instead.
  """
  directory = str(manager.directory)
  steps = sorted(manager.all_steps(), reverse=True)
  damaged = []
  for step in steps:
    problem = verify_step(directory, step)
    if problem is None:
      break
    if on_damaged == "stop":
      raise CheckpointError(f"checkpoint step {step} is damaged: {problem}; stopping "
                            "(train.on_bad_ckpt='stop'; 'fallback' resumes from an older step)")
    damaged.append((step, problem))
  else:
    step = None
  if jax.process_index() == 0:
    for bad, problem in damaged:
      where = _move_aside(directory, bad)
      report(f"checkpoint step {bad} is damaged ({problem}); moved to {where}; "
             + (f"falling back to step {step}" if step is not None else "no intact step left"))
  if damaged:
    manager.reload()
  if step is None and damaged:
    raise CheckpointError(f"no intact checkpoint in {directory}: steps "
                          f"{', '.join(str(s) for s, _ in damaged)} are damaged (moved to "
                          f"{os.path.join(directory, DAMAGED_DIR)}); move ckpt/ away to start "
                          "from scratch")
  return step


def newest_verified_step(manager: ocp.CheckpointManager) -> int | None:
  """The newest step on disk whose checksums hold right now (no side effects)."""
  manager.reload()
  for step in sorted(manager.all_steps(), reverse=True):
    if verify_step(str(manager.directory), step) is None:
      return step
  return None


def saved_meta(manager: ocp.CheckpointManager, step: int) -> dict:
  """The JSON item of `step` (data position and config), without touching the arrays."""
  return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore(manager: ocp.CheckpointManager, target: TrainState, step: int | None = None, *,
            on_damaged: str = "fallback", report: Callable[[str], None] = print,
            config: dict | None = None) -> tuple[TrainState, dict] | None:
  """(state, meta) of `step` (default: the newest intact one), or None when there is none.

  Args:
    manager: from `make_manager`.
    target: a state with this run's shapes and shardings.
    step: a specific step, which must verify; None picks the newest intact step.
    on_damaged: "fallback" (report, move aside, try older) or "stop" (raise).
    report: receives the one-line damage reports.
    config: this run's config as a dict: a checkpoint that does not fit the target is then
      explained by the config keys that differ (`model.lora.rank: 4 → 8`), not orbax's dump.

  Raises:
    CheckpointError: a damaged step with "stop" or an explicit `step`, no intact step, or a
      checkpoint whose shapes do not fit this run.
  """
  if step is None:
    step = newest_intact_step(manager, on_damaged=on_damaged, report=report)
    if step is None:
      return None
  elif (problem := verify_step(str(manager.directory), step)) is not None:
    raise CheckpointError(f"checkpoint step {step} is damaged: {problem}")
  changed = []
  if config is not None:
    changed = config_changes(saved_meta(manager, step).get("config", {}), config)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_like(target)), meta=ocp.args.JsonRestore()))
  except (ValueError, KeyError, TypeError) as e:
    what = "; ".join(changed) if changed else f"no config key differs ({str(e)[:200]})"
    raise CheckpointError(f"checkpoint step {step} does not fit this run's shapes; the config "
                          f"differs from the saved one in: {what}") from None
  return restored.state, restored.meta


def config_changes(saved: dict, current: dict, prefix: str = "") -> list[str]:
  """`key: old → new` for every dotted key whose value differs between two config dicts."""
  out = []
  for k in sorted(set(saved) | set(current)):
    a, b = saved.get(k), current.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_changes(a, b, f"{prefix}{k}.")
    elif json.dumps(a) != json.dumps(b):
      out.append(f"{prefix}{k}: {json.dumps(a)} → {json.dumps(b)}")
  return out


def restore_params(workdir: str, step: int | None = None) -> tuple[Any, dict, int]:
  """(trained params tree as saved — full params or LoRA adapters —, run config dict, step)
  without building a TrainState: evaluation and export need neither optimizer nor mesh.
  The step is verified first (default: the newest verified step; nothing is moved)."""
  manager = make_manager(workdir)
  try:
    if step is None:
      step = newest_verified_step(manager)
      if step is None:
        what = "no checkpoint" if not manager.all_steps() else "no intact (verified) checkpoint"
        raise FileNotFoundError(f"{what} in {os.path.join(workdir, 'ckpt')}")
    elif (problem := verify_step(str(manager.directory), step)) is not None:
      raise CheckpointError(f"checkpoint step {step} is damaged: {problem}")
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  finally:
    manager.close()
  return restored.state["params"], restored.meta["config"], step
