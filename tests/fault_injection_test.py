"""Fault injection on real CLI runs of the tiny model: each fault has its asserted outcome.

    SIGKILL at random points (and right after a checkpoint write starts) → the rerun resumes
        from the newest intact step, which equals the straight run's, and ends bit-exactly
        equal to it, with each metrics row logged once
    SIGTERM → exit 75 and one line; a checkpoint of the last completed step; rerun resumes
    SIGINT → exit 75, no traceback
    flipped byte / truncated file / deleted metadata file in the newest step → one line, fall
        back to the previous step, finish bit-exactly; with on_bad_ckpt=stop: exit 2, one line
    two trainers on one workdir → the second exits 3 naming the holder, writing nothing
    keep_ckpts=0 → exit 2 naming the key, checkpoints untouched
    resume with another LoRA rank → exit 2 naming `model.lora.rank: 0 → 4`; config.json kept

Every run is a subprocess (`python -m concise_jax.main`), sharing one persistent compilation
cache so that only the first run compiles. FAULT_KILLS (default 6) sets the number of SIGKILLs,
FAULT_SEED (default 0) their placement; the kill-resume tally is printed (pytest -s).
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from concise_jax.train import checkpoint, preemption, run_files

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 8
BASE = ["--config=configs/grpo.py:model=tiny,runlocal", f"--config.train.steps={STEPS}",
        "--config.train.ckpt_every=2", "--config.train.keep_ckpts=10"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  cache = tmp_path_factory.mktemp("jax_cache")
  return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _start(workdir, env, *extra):
  return subprocess.Popen([sys.executable, "-m", "concise_jax.main", f"--workdir={workdir}",
                           *BASE, *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _run(workdir, env, *extra):
  proc = _start(workdir, env, *extra)
  out, err = proc.communicate(timeout=600)
  return proc.returncode, out, err


def _lines(err):
  """stderr without the progress bar's carriage-return frames and absl/jax warnings."""
  lines = [l.split("\r")[-1].strip() for l in err.splitlines()]
  return [l for l in lines if l and "it/s" not in l and "step/s" not in l
          and not l.startswith(("W", "I")) and "Warning" not in l and "warn(" not in l]


def _saved(workdir, step):
  manager = checkpoint.make_manager(str(workdir))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  finally:
    manager.close()
  return jax.tree.map(np.asarray, restored.state), restored.meta["data"]


def _equal(workdir_a, workdir_b, step) -> bool:
  (a, data_a), (b, data_b) = _saved(workdir_a, step), _saved(workdir_b, step)
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  return (tree_a == tree_b and data_a == data_b
          and all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b)))


def _rows(workdir):
  rows = run_files.read_metrics(str(workdir))
  return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def _newest_intact(workdir):
  if not os.path.isdir(os.path.join(workdir, "ckpt")):
    return None
  manager = checkpoint.make_manager(str(workdir))
  try:
    return checkpoint.newest_verified_step(manager)
  finally:
    manager.close()


def _steps(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, "ckpt")) if d.isdigit())


@pytest.fixture(scope="module")
def straight(tmp_path_factory, env):
  """The uninterrupted reference run, and how long a (cached) run takes."""
  workdir = tmp_path_factory.mktemp("straight")
  code, _, err = _run(workdir, env)
  assert code == 0, err[-3000:]
  assert _steps(workdir) == [2, 4, 6, 8]
  assert [r["step"] for r in _rows(workdir)] == list(range(1, STEPS + 1))
  started = time.time()
  code, _, err = _run(workdir, env)        # resumes at the end: start-up time, cache warm
  assert code == 0, err[-3000:]
  return types.SimpleNamespace(workdir=workdir, seconds=time.time() - started)


def _copy(straight, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(straight, workdir)
  return workdir


def _wait_for(predicate, proc, timeout=300.0, poll=0.002):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and proc.poll() is None:
    if predicate():
      return True
    time.sleep(poll)
  return False


def _writing(workdir, since=0.0):
  """An orbax temporary step directory made after `since` exists: a write is in flight."""
  ckpt = os.path.join(workdir, "ckpt")
  try:
    return any(".orbax-checkpoint-tmp" in d and os.stat(os.path.join(ckpt, d)).st_mtime >= since
               for d in os.listdir(ckpt))
  except FileNotFoundError:
    return False


def _logged(workdir, since, step):
  """The run started at `since` has logged a row for `step` or later (rows older than the
  restored step are the previous run's until the new run trims and appends)."""
  path = os.path.join(workdir, "metrics.jsonl")
  try:
    fresh = os.stat(path).st_mtime >= since
  except FileNotFoundError:
    return False
  rows = _rows(workdir)
  return fresh and bool(rows) and rows[-1]["step"] >= step


def test_sigkill_at_random_points_resumes_bit_exactly(straight, env, tmp_path):
  rng = random.Random(int(os.environ.get("FAULT_SEED", "0")))
  kills = int(os.environ.get("FAULT_KILLS", "6"))
  workdir, tally, attempts = tmp_path / "run", [], 0
  while len(tally) < kills and attempts < 3 * kills:
    attempts += 1
    resume = _newest_intact(workdir) or 0
    if resume == STEPS:             # finished: start the chain again
      shutil.rmtree(workdir)
      resume = 0
    since = time.time()
    proc = _start(workdir, env)
    if len(tally) % 3 == 0:         # a checkpoint write in flight (else right after a save)
      ckpt_step = resume + 2 - resume % 2
      where = "during checkpoint write"
      _wait_for(lambda: _writing(workdir, since) or _logged(workdir, since, ckpt_step), proc)
    elif len(tally) % 3 == 1:       # a random time after a random step's metrics row
      target = rng.randint(resume + 1, STEPS)
      where = f"after step {target} + random delay"
      _wait_for(lambda: _logged(workdir, since, target), proc)
      time.sleep(rng.uniform(0.0, 1.5))   # often while the previous save is in flight
    else:                           # a random time from launch (start-up, compile or training)
      where = "random time"
      _wait_for(lambda: False, proc, timeout=rng.uniform(0.2, 1.1) * straight.seconds)
    if proc.poll() is not None:     # finished before the kill: not a kill
      proc.communicate()
      continue
    mid_write = _writing(workdir, since)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    intact = _newest_intact(workdir)
    exact = intact is None or _equal(workdir, straight.workdir, intact)
    tally.append((where + (" (a write in flight)" if mid_write else ""), intact, exact))
    assert exact, tally
  code, _, err = _run(workdir, env)
  assert code == 0, err[-3000:]
  final_exact = _equal(workdir, straight.workdir, STEPS)
  print(f"\nkill-resume: {len(tally)} SIGKILLs, {sum(e for *_, e in tally)} restore points equal "
        f"the straight run's, final state bit-exact: {final_exact}; " + "; ".join(
            f"{w} → resumes from {s}" for w, s, _ in tally))
  assert len(tally) >= kills // 2 and final_exact
  assert _rows(workdir) == _rows(straight.workdir)      # every row once, identical values


def test_sigterm_saves_the_last_completed_step_and_rerun_resumes(straight, env, tmp_path):
  workdir = tmp_path / "run"
  proc = _start(workdir, env, "--config.train.ckpt_every=100")
  assert _wait_for(lambda: any(r["step"] >= 1 for r in _rows(workdir)), proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == preemption.EXIT_PREEMPTED, err[-3000:]
  step = _steps(workdir)[-1]   # the signal lands 1-3 steps in (an update takes ~0.1 s)
  assert _lines(err)[-1] == (f"preempted by SIGTERM: checkpoint of step {step} saved, metrics "
                             "flushed; rerun the same command to resume")
  assert 1 <= step < STEPS and _steps(workdir) == [step] and not _writing(workdir)
  if step in _steps(straight.workdir):   # the straight run saves even steps only
    assert _equal(workdir, straight.workdir, step)
  assert _rows(workdir) == _rows(straight.workdir)[:step]
  code, _, err = _run(workdir, env, "--config.train.ckpt_every=100")
  assert code == 0, err[-3000:]
  assert _equal(workdir, straight.workdir, STEPS) and _rows(workdir) == _rows(straight.workdir)


def test_sigint_exits_preempted_without_traceback(env, tmp_path):
  workdir = tmp_path / "run"
  proc = _start(workdir, env)
  assert _wait_for(lambda: any(r["step"] >= 1 for r in _rows(workdir)), proc)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == preemption.EXIT_PREEMPTED, err[-3000:]
  assert "Traceback" not in err and _lines(err)[-1].startswith("preempted by SIGINT")


def _damage(step_dir, how):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs]
  data = max((f for f in files if os.sep + "d" + os.sep in f), key=os.path.getsize)
  if how == "flip":
    with open(data, "r+b") as f:
      f.seek(os.path.getsize(data) // 2)
      byte = f.read(1)
      f.seek(-1, os.SEEK_CUR)
      f.write(bytes([byte[0] ^ 0x5A]))
  elif how == "truncate":
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 3)
  else:
    os.remove(os.path.join(step_dir, "state", "_METADATA"))


@pytest.mark.parametrize("how", ["flip", "truncate", "delete_metadata"])
def test_damaged_newest_step_falls_back_and_finishes_bit_exactly(straight, env, tmp_path, how):
  workdir = _copy(straight.workdir, tmp_path)
  _damage(workdir / "ckpt" / "8", how)
  if how == "delete_metadata":      # stopping instead is one line and exit 2
    code, _, err = _run(workdir, env, "--config.train.on_bad_ckpt=stop")
    assert code == 2 and _lines(err)[-1].startswith(
        "error: checkpoint step 8 is damaged: state/_METADATA is missing; stopping"), err[-2000:]
  code, out, err = _run(workdir, env)
  assert code == 0, err[-3000:]
  damaged = [l for l in _lines(out + err) if "is damaged" in l]   # notes go to the console
  assert len(damaged) == 1 and damaged[0].startswith("checkpoint step 8 is damaged (")
  assert damaged[0].endswith("falling back to step 6")
  assert len(os.listdir(workdir / "ckpt" / "damaged")) == 1
  assert _equal(workdir, straight.workdir, STEPS) and _rows(workdir) == _rows(straight.workdir)


def test_second_trainer_on_a_live_workdir_refuses_naming_the_holder(env, tmp_path):
  workdir = tmp_path / "run"
  first = _start(workdir, env, "--config.train.steps=100000", "--config.train.ckpt_every=1000")
  try:
    assert _wait_for(lambda: len(_rows(workdir)) >= 1, first)
    with open(workdir / "config.json", encoding="utf-8") as f:
      config_before = f.read()
    code, _, err = _run(workdir, env, "--config.seed=1")
    assert code == 3, err[-3000:]
    assert len(_lines(err)) == 1 and _lines(err)[0].startswith(
        f"error: workdir {workdir} is in use by pid {first.pid} on host "
        f"{socket.gethostname()} (since "), err[-2000:]
    with open(workdir / "config.json", encoding="utf-8") as f:
      assert f.read() == config_before
  finally:
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=300)
  assert first.returncode == preemption.EXIT_PREEMPTED
  steps = [r["step"] for r in _rows(workdir)]
  assert steps == list(range(1, len(steps) + 1))      # one writer: no interleaved rows


def test_keep_ckpts_zero_is_refused_and_deletes_nothing(straight, env, tmp_path):
  workdir = _copy(straight.workdir, tmp_path)
  code, _, err = _run(workdir, env, "--config.train.keep_ckpts=0")
  assert code == 2
  assert "config.train.keep_ckpts=0: must be an integer in [1, inf)" in err
  assert _steps(workdir) == [2, 4, 6, 8]


def test_resume_with_another_lora_rank_names_the_key_and_writes_nothing(straight, env, tmp_path):
  workdir = _copy(straight.workdir, tmp_path)
  with open(workdir / "config.json", encoding="utf-8") as f:
    config_before = f.read()
  code, _, err = _run(workdir, env, "--config.model.lora.rank=4")
  assert code == 2, err[-3000:]
  assert _lines(err)[-1].startswith("error: checkpoint step 8 does not fit this run's shapes")
  assert "model.lora.rank: 0 → 4" in _lines(err)[-1]
  with open(workdir / "config.json", encoding="utf-8") as f:
    assert f.read() == config_before
  assert _steps(workdir) == [2, 4, 6, 8]
