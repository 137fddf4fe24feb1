"""One trainer per workdir: a live holder is named, a dead holder's lock is taken over."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from concise_jax.train import workdir_lock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Loads the module file alone: the package __init__ would import the whole trainer.
_HOLD = ("import importlib.util, sys, time; "
         "spec = importlib.util.spec_from_file_location('lock', sys.argv[2]); "
         "lock = importlib.util.module_from_spec(spec); spec.loader.exec_module(lock); "
         "lock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)")


def _holder(workdir):
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(workdir), workdir_lock.__file__],
                          cwd=REPO, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_live_holder_is_refused_then_dead_holder_is_taken_over(tmp_path):
  proc = _holder(tmp_path)
  try:
    with pytest.raises(workdir_lock.WorkdirBusy,
                       match=f"in use by pid {proc.pid} on host {socket.gethostname()}"):
      workdir_lock.acquire(str(tmp_path))
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  lines = []
  with workdir_lock.hold(str(tmp_path), report=lines.append):
    pass
  assert len(lines) == 1 and f"left by pid {proc.pid}" in lines[0]
  assert "no longer running" in lines[0]


def test_clean_release_leaves_no_stale_holder(tmp_path):
  lines = []
  with workdir_lock.hold(str(tmp_path), report=lines.append):
    pass
  with workdir_lock.hold(str(tmp_path), report=lines.append):
    pass
  assert lines == []
