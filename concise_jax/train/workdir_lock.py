"""One trainer per workdir: a POSIX record lock on `workdir/.lock` naming its holder.

Two trainers on one workdir interleave `metrics.jsonl` rows and overwrite each other's
checkpoints and config. `hold(workdir)` takes an exclusive `fcntl.lockf` lock and writes
`{pid, host, since}` into the file; a second trainer fails at once with a `WorkdirBusy` naming
the holder. The kernel drops the lock when its process dies (even by SIGKILL), so a lock file
left by a dead trainer is simply taken over; record locks also belong to the process, not to
forked children (verifier workers), and work on NFS through lockd.

Multi-process runs: only process 0 takes the lock (`jax.process_index() == 0`).

POSIX record locks are per process: two `train.run` calls in one process do not exclude each
other, and closing any descriptor of `.lock` in the holding process drops its lock, so nothing
else in the trainer may open that file.
"""
import contextlib
import fcntl
import json
import os
import socket
import time

import jax

LOCK_FILE = ".lock"


class WorkdirBusy(RuntimeError):
  """Another live trainer holds the workdir; the message names it."""


def _holder(fd: int) -> dict:
  os.lseek(fd, 0, os.SEEK_SET)
  try:
    return json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
  except (ValueError, UnicodeDecodeError):
    return {}


def _describe(holder: dict) -> str:
  return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
          f"(since {holder.get('since', '?')})")


def acquire(workdir: str) -> tuple[int, str | None]:
  """(locked file descriptor, description of a dead previous holder or None).

  Raises:
    WorkdirBusy: a live process holds the lock.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = _holder(fd)
    os.close(fd)
    raise WorkdirBusy(f"workdir {workdir} is in use by {_describe(holder)}; stop that run or "
                      "choose another --workdir") from None
  previous = _holder(fd)
  me = {"pid": os.getpid(), "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps(me).encode("utf-8"))
  os.fsync(fd)
  return fd, _describe(previous) if previous else None


def release(fd: int) -> None:
  """Empties the lock file (no stale holder shown) and drops the lock."""
  try:
    os.ftruncate(fd, 0)
  finally:
    os.close(fd)


@contextlib.contextmanager
def hold(workdir: str, report=print):
  """Holds the workdir lock for the block (process 0 only); reports a taken-over stale lock."""
  if jax.process_index() != 0:
    yield
    return
  fd, stale = acquire(workdir)
  if stale:
    report(f"took over the lock of {workdir} left by {stale}, which is no longer running")
  try:
    yield
  finally:
    release(fd)
