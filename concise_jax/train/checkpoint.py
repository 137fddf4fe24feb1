"""Orbax checkpoints in `workdir/ckpt`: the whole TrainState plus a JSON item.

Each save holds `state` (params, optimizer state, reward state, rng, step — exact bits) and
`meta` (the data iterator's position, the resolved config). Restoring into an abstract target
that carries the current shardings lets a checkpoint land on a different mesh.
"""
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from concise_jax.train.state import TrainState


def make_manager(workdir: str, *, keep: int = 3) -> ocp.CheckpointManager:
  """A manager over `workdir/ckpt` keeping the newest `keep` checkpoints."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "ckpt")), options=options,
                               item_names=("state", "meta"))


def save(manager: ocp.CheckpointManager, state: TrainState, meta: dict) -> None:
  """Saves at `state.step`; returns once the arrays are copied off the devices (the write
  finishes in the background, so the state may be donated to the next update right away)."""
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             meta=ocp.args.JsonSave(meta)), force=True)


def abstract_like(state: TrainState) -> Any:
  """ShapeDtypeStructs with the leaves' shardings: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      state)


def restore(manager: ocp.CheckpointManager, target: TrainState,
            step: int | None = None) -> tuple[TrainState, dict] | None:
  """(state, meta) of `step` (default: the latest), or None when there is no checkpoint."""
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_like(target)), meta=ocp.args.JsonRestore()))
  return restored.state, restored.meta


def restore_params(workdir: str, step: int | None = None) -> tuple[Any, dict, int]:
  """(trained params tree as saved — full params or LoRA adapters —, run config dict, step)
  without building a TrainState: evaluation and export need neither optimizer nor mesh."""
  manager = make_manager(workdir)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'ckpt')}")
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  finally:
    manager.close()
  return restored.state["params"], restored.meta["config"], step
