"""Verified checkpoints on a small pytree: checksums, fallback past damage, retention policy."""
import gc
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.train import checkpoint


@flax.struct.dataclass
class _State:
  step: jax.Array
  w: jax.Array


def _state(step: int, n: int = 256):
  return _State(step=jnp.asarray(step, jnp.int32), w=jnp.arange(n, dtype=jnp.float32) * step)


def _save_steps(workdir, steps, *, keep=3, keep_every=0, config=None):
  manager = checkpoint.make_manager(str(workdir), keep=keep, keep_every=keep_every)
  try:
    for step in steps:
      checkpoint.save(manager, _state(step), {"data": {"i": step}, "config": config or {}})
  finally:
    manager.close()


def _steps(workdir):
  return sorted(int(d) for d in os.listdir(workdir / "ckpt") if d.isdigit())


def _restore(workdir, **kwargs):
  manager = checkpoint.make_manager(str(workdir))
  try:
    return checkpoint.restore(manager, _state(0), **kwargs)
  finally:
    manager.close()


def _largest_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs
           if f not in (checkpoint.CHECKSUMS, "commit_success.txt")]
  return max(files, key=os.path.getsize)


def test_each_step_is_sealed_with_checksums_and_verifies(tmp_path):
  _save_steps(tmp_path, [1, 2])
  for step in (1, 2):
    assert (tmp_path / "ckpt" / str(step) / checkpoint.CHECKSUMS).exists()
    assert checkpoint.verify_step(str(tmp_path / "ckpt"), step) is None
  state, meta = _restore(tmp_path)
  assert int(state.step) == 2 and meta["data"] == {"i": 2}


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_metadata", "delete_checksums"])
def test_damaged_newest_step_falls_back_in_one_line(tmp_path, damage):
  _save_steps(tmp_path, [1, 2])
  step_dir = tmp_path / "ckpt" / "2"
  if damage == "flip":
    path = _largest_file(step_dir)
    with open(path, "r+b") as f:
      f.seek(os.path.getsize(path) // 2)
      byte = f.read(1)
      f.seek(-1, os.SEEK_CUR)
      f.write(bytes([byte[0] ^ 0xFF]))
  elif damage == "truncate":
    path = _largest_file(step_dir)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  elif damage == "delete_metadata":
    os.remove(step_dir / "state" / "_METADATA")
  else:
    os.remove(step_dir / checkpoint.CHECKSUMS)
  manager = checkpoint.make_manager(str(tmp_path))
  try:   # what the NaN halt names: the newest step that verifies, nothing moved
    assert checkpoint.newest_verified_step(manager) == 1 and _steps(tmp_path) == [1, 2]
  finally:
    manager.close()
  lines = []
  state, _ = _restore(tmp_path, report=lines.append)
  assert int(state.step) == 1
  np.testing.assert_array_equal(state.w, _state(1).w)
  assert len(lines) == 1 and lines[0].startswith("checkpoint step 2 is damaged (")
  assert "falling back to step 1" in lines[0] and "\n" not in lines[0]
  assert _steps(tmp_path) == [1]                       # moved aside, kept for inspection
  assert len(os.listdir(tmp_path / "ckpt" / checkpoint.DAMAGED_DIR)) == 1
  _save_steps(tmp_path, [2])                           # the step can be written again
  assert int(_restore(tmp_path)[0].step) == 2


def test_damaged_step_stops_when_configured(tmp_path):
  _save_steps(tmp_path, [1, 2])
  os.remove(tmp_path / "ckpt" / "2" / "state" / "_METADATA")
  with pytest.raises(checkpoint.CheckpointError, match="step 2 is damaged: state/_METADATA is"):
    _restore(tmp_path, on_damaged="stop")
  assert _steps(tmp_path) == [1, 2]                    # nothing moved


def test_no_intact_step_is_an_error_not_a_fresh_start(tmp_path):
  _save_steps(tmp_path, [1])
  os.remove(tmp_path / "ckpt" / "1" / "state" / "_METADATA")
  with pytest.raises(checkpoint.CheckpointError, match="no intact checkpoint"):
    _restore(tmp_path, report=lambda _: None)


def test_retention_keeps_newest_and_every_kth(tmp_path):
  _save_steps(tmp_path, [1, 2, 3, 4, 5], keep=2)
  assert _steps(tmp_path) == [4, 5]
  _save_steps(tmp_path / "k", [1, 2, 3, 4, 5], keep=1, keep_every=2)
  assert _steps(tmp_path / "k") == [2, 4, 5]


def test_retention_never_deletes_steps_above_this_runs_own(tmp_path):
  _save_steps(tmp_path, [10])                          # another run's newer step
  _save_steps(tmp_path, [1, 2, 3], keep=1)
  assert _steps(tmp_path) == [3, 10]


def test_keep_zero_is_rejected():
  with pytest.raises(ValueError, match="keep=0"):
    checkpoint.Manager("/nonexistent/ckpt", keep=0)


# orbax abandons the reads it had started; their coroutines are collected here, not later.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_shape_mismatch_names_the_differing_config_keys(tmp_path):
  _save_steps(tmp_path, [1], config={"model": {"lora": {"rank": 4}}, "seed": 0})
  manager = checkpoint.make_manager(str(tmp_path))
  try:
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"in: model\.lora\.rank: 4 → 8$"):
      checkpoint.restore(manager, _state(0, n=300),
                         config={"model": {"lora": {"rank": 8}}, "seed": 0})
  finally:
    manager.close()
    gc.collect()
