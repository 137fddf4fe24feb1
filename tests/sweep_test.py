"""The sweep runner on the smoke sweep (tiny model, 2 methods × 2 steps): summaries written,
finished runs skipped, an interrupted run resumed from its checkpoint, results reproducible."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import pytest

from concise_jax import sweep
from experiments import study_report

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(REPO, "experiments", "sweeps", "smoke.py")


def _load(results, spec):
  with open(sweep.summary_path(results, spec), encoding="utf-8") as f:
    out = json.load(f)
  out.pop("wall_s")
  return out


def test_smoke_sweep_runs_skips_finished_and_reproduces(tmp_path):
  specs, _ = sweep.load_sweep(SMOKE)
  assert [s.run_id for s in specs] == ["dler-s0", "grpo-s0"]
  assert specs[0].command("W")[3:] == [
      "--config=configs/grpo.py:model=tiny,runlocal", "--config.seed=0",
      "--config.train.steps=2", "--config.train.ckpt_every=1", "--config.eval.every=2",
      "--config.reward.name=dler", "--config.reward.dler.max_len=12", "--workdir=W"]
  root, results = str(tmp_path / "a"), str(tmp_path / "res_a")
  assert sweep.run_sweep(specs, root, results, max_runs=1) == {"dler-s0": "ran"}
  assert sweep.run_sweep(specs, root, results) == {"dler-s0": "skipped", "grpo-s0": "ran"}
  first = _load(results, specs[1])
  assert first["steps"] == 2 and first["curves"]["step"] == [0, 1, 2]   # step 0: the evaluation before training
  assert "eval/greedy/accuracy" in first["final"] and first["eval_step0"]
  assert first["platform"]["device_kind"] == jax.devices()[0].device_kind   # where it trained
  # A second sweep in fresh directories gives the same numbers (same seeds, same programs).
  results_b = str(tmp_path / "res_b")
  sweep.run_sweep(specs, str(tmp_path / "b"), results_b, executor="local")
  for spec in specs:
    assert _load(results_b, spec) == _load(results, spec)
  # The study report reads real summaries: one table row per method, the plots written.
  table = study_report.main(["--study=smoke", f"--results={results}"])
  assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["dler", "grpo"]
  assert os.path.getsize(os.path.join(results, "smoke", "pareto.png")) > 0


def test_killed_sweep_resumes_the_interrupted_run_from_its_checkpoint(tmp_path):
  specs, _ = sweep.load_sweep(SMOKE)
  root, results = str(tmp_path / "root"), str(tmp_path / "res")
  cmd = [sys.executable, "-m", "concise_jax.sweep", f"--sweep={SMOKE}", f"--root={root}",
         f"--results={results}", "--only=grpo"]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
  grpo = specs[1]
  ckpt = os.path.join(sweep.workdir_of(root, grpo), "ckpt", "1")
  deadline = time.monotonic() + 600
  while not os.path.isdir(ckpt) and time.monotonic() < deadline and proc.poll() is None:
    time.sleep(0.05)
  os.killpg(proc.pid, signal.SIGKILL)        # the sweep and its training run
  proc.wait()
  assert not os.path.exists(sweep.summary_path(results, grpo))
  assert sweep.run_sweep(specs, root, results, only=["grpo"]) == {"grpo-s0": "ran"}
  with open(os.path.join(sweep.workdir_of(root, grpo), "sweep.log"), encoding="utf-8") as f:
    assert "resumed from step" in f.read()
  summary = _load(results, grpo)
  assert summary["curves"]["step"] == [0, 1, 2]       # every step logged once
