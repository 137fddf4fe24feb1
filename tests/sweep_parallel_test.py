"""`run_sweep(parallel=N)`: N runs at a time, in the sweep's order; a failure stops the sitting."""
import threading
import time

import pytest

from concise_jax import sweep


def _specs(n):
  return [sweep.RunSpec("study", f"run{i}", 0, "configs/grpo.py", ()) for i in range(n)]


class _FakeRuns:
  """Stands in for `run_one`: records how many runs overlap and which started. Each run waits
  (up to 10 s) until `wave` runs are going at once, so a slow machine cannot hide the overlap."""

  def __init__(self, wave=1, fail=()):
    self.lock, self.active, self.most, self.started, self.fail = (
        threading.Lock(), 0, 0, [], set(fail))
    self.wave, self.full = wave, threading.Event()

  def __call__(self, spec, root, results):
    del root, results
    with self.lock:
      self.active += 1
      self.most = max(self.most, self.active)
      self.started.append(spec.name)
      if self.active >= self.wave:
        self.full.set()
    self.full.wait(timeout=10)
    time.sleep(0.01)
    with self.lock:
      self.active -= 1
    if spec.name in self.fail:
      raise RuntimeError(f"run {spec.name} exited 1")
    return "ran"


@pytest.mark.parametrize("parallel, most", [(1, 1), (3, 3)])
def test_runs_overlap_up_to_parallel(monkeypatch, tmp_path, parallel, most):
  fake = _FakeRuns(wave=most)
  monkeypatch.setattr(sweep, "run_one", fake)
  status = sweep.run_sweep(_specs(6), str(tmp_path), str(tmp_path), parallel=parallel)
  assert status == {f"run{i}-s0": "ran" for i in range(6)}
  assert fake.most == most            # never more than `parallel` at once
  # The first wave is the sweep's first runs (threads may start them in any order).
  assert sorted(fake.started[:parallel]) == [f"run{i}" for i in range(parallel)]


def test_a_failed_run_stops_the_sitting_before_later_runs_start(monkeypatch, tmp_path):
  fake = _FakeRuns(fail={"run1"})
  monkeypatch.setattr(sweep, "run_one", fake)
  with pytest.raises(RuntimeError, match="run run1 exited 1"):
    sweep.run_sweep(_specs(5), str(tmp_path), str(tmp_path), parallel=1)
  assert fake.started == ["run0", "run1"]
