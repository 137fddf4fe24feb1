"""`Verifier`: batch answer checking in worker processes with a hard per-item time limit.

Why processes: sympy (inside math-verify) can spin for minutes on adversarial LaTeX, holds the
GIL, and math-verify's own timeouts use `signal.alarm`, which only works on a main thread. A
worker that overruns its item's deadline is killed (SIGKILL) and replaced; the item counts as
incorrect and the rest of its chunk is re-queued on a fresh worker.

Why a background thread: `submit` returns a `concurrent.futures.Future` at once, so the host
loop can start the next rollout while the previous batch is being verified.

Workers come from a `forkserver` context: forking a multi-threaded JAX process is unsafe, and a
fork server (which has imported this module once) replaces a killed worker in milliseconds,
where `spawn` would re-import JAX and sympy for seconds.
"""
import collections
from concurrent import futures
import dataclasses
import multiprocessing
from multiprocessing import connection
import os
import signal
import threading
import time
from typing import Sequence

from concise_jax.verify import extract
from concise_jax.verify import verify as verify_lib

# Most items sent to a worker per message (fewer IPC round trips); each still gets its own
# deadline. Smaller batches are split evenly so every worker gets a share.
_MAX_CHUNK = 16


def _serve(conn) -> None:
  """Worker loop: receive a chunk of (completion, reference, kind), send one bool per item."""
  # Ctrl-C reaches the whole process group; the parent decides when workers stop.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  while True:
    try:
      chunk = conn.recv()
    except EOFError:
      return
    if chunk is None:
      return
    for completion, reference, kind in chunk:
      try:
        ok = verify_lib.is_correct(completion, reference, kind)
      except Exception:  # pylint: disable=broad-except  # malformed item: incorrect, not fatal
        ok = False
      conn.send(ok)


def _context():
  """A forkserver context with this module preloaded (spawn where fork servers don't exist)."""
  if "forkserver" not in multiprocessing.get_all_start_methods():
    return multiprocessing.get_context("spawn")
  ctx = multiprocessing.get_context("forkserver")
  ctx.set_forkserver_preload([__name__])
  return ctx


@dataclasses.dataclass
class _Batch:
  """One submitted batch: results fill in as items finish; the future completes with all."""
  results: list
  remaining: int
  future: futures.Future


@dataclasses.dataclass
class _Worker:
  """A worker process, its pipe, and the (batch, index) items it is working through in order."""
  process: multiprocessing.Process
  conn: connection.Connection
  in_flight: collections.deque = dataclasses.field(default_factory=collections.deque)
  deadline: float = 0.0


class Verifier:
  """Checks batches of completions in a process pool with a hard per-item time limit.

  Usage:
    with Verifier(num_workers=2, timeout_s=2.0) as verifier:
      pending = verifier.submit(completions, references, kinds)   # returns at once
      ...                                                          # e.g. the next rollout
      correct = pending.result()                                   # list[bool]

  An item that errors, crashes its worker, or exceeds `timeout_s` is incorrect (False).
  Workers start through forkserver/spawn, which re-import the main module: a script that
  creates a Verifier needs the usual `if __name__ == "__main__":` guard (absl's `app.run`
  pattern has it). Call `close()` (or use `with`) to stop the workers.
  """

  def __init__(self, num_workers: int | None = None, timeout_s: float = 2.0):
    """Starts the workers and the dispatcher thread.

    Args:
      num_workers: worker processes; default min(2, cpu count), the host is mostly busy
        with rollouts.
      timeout_s: hard wall-clock limit per item, measured from when its worker starts it.
    """
    self.timeout_s = timeout_s
    self._ctx = _context()
    self._queue: collections.deque = collections.deque()  # (batch, index, payload)
    self._lock = threading.Lock()
    self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
    self._closed = False
    self._workers = [self._start_worker() for _ in range(num_workers or min(2, os.cpu_count()))]
    self._thread = threading.Thread(target=self._dispatch, name="verifier", daemon=True)
    self._thread.start()

  # --- public API -------------------------------------------------------------------------

  def submit(self, completions: Sequence[str], references: Sequence[str],
             kinds: str | Sequence[str] = "numeric") -> futures.Future:
    """Queues a batch; the returned future resolves to one bool per completion, in order.

    Completions are sanitised and capped here (a 1 MB output costs one slice, not 1 MB of IPC).
    """
    if len(completions) != len(references):
      raise ValueError(f"{len(completions)} completions but {len(references)} references")
    kinds = [kinds] * len(completions) if isinstance(kinds, str) else list(kinds)
    for kind in set(kinds):
      verify_lib.CHECKERS.get(kind)  # an unknown kind is a caller bug: fail now, loudly
    batch = _Batch([False] * len(completions), len(completions), futures.Future())
    if not completions:
      batch.future.set_result([])
      return batch.future
    with self._lock:
      if self._closed:
        raise RuntimeError("Verifier is closed")
      for i, (c, r, k) in enumerate(zip(completions, references, kinds)):
        self._queue.append((batch, i, (extract.sanitize(c), r, k)))
      self._wake_w.send(None)
    return batch.future

  def verify(self, completions: Sequence[str], references: Sequence[str],
             kinds: str | Sequence[str] = "numeric") -> list[bool]:
    """`submit(...).result()`: checks a batch and waits for it."""
    return self.submit(completions, references, kinds).result()

  def close(self) -> None:
    """Stops the dispatcher and the workers; pending futures get an error."""
    with self._lock:
      if self._closed:
        return
      self._closed = True
      self._wake_w.send(None)
    self._thread.join(timeout=10)
    for worker in self._workers:
      self._stop_worker(worker, graceful=True)

  def __enter__(self) -> "Verifier":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # --- workers ----------------------------------------------------------------------------

  def _start_worker(self) -> _Worker:
    parent, child = self._ctx.Pipe()
    process = self._ctx.Process(target=_serve, args=(child,), name="verifier-worker",
                                daemon=True)
    process.start()
    child.close()
    return _Worker(process, parent)

  def _stop_worker(self, worker: _Worker, graceful: bool = False) -> None:
    if graceful:
      try:
        worker.conn.send(None)
      except (OSError, ValueError):
        pass
      worker.process.join(timeout=1)
    if worker.process.is_alive():
      worker.process.kill()
      worker.process.join(timeout=5)
    worker.conn.close()

  def _replace(self, worker: _Worker) -> None:
    """Kills `worker`, fails its current item, and re-queues the rest of its chunk first."""
    self._stop_worker(worker)
    if worker.in_flight:
      self._finish(*worker.in_flight.popleft(), ok=False)
    with self._lock:
      self._queue.extendleft(reversed(worker.in_flight))
    worker.in_flight.clear()
    self._workers[self._workers.index(worker)] = self._start_worker()

  # --- dispatcher thread ------------------------------------------------------------------

  def _finish(self, batch: _Batch, index: int, payload, ok: bool) -> None:
    del payload  # in-flight entries keep their payload only for re-queueing
    batch.results[index] = bool(ok)
    batch.remaining -= 1
    if batch.remaining == 0:
      batch.future.set_result(batch.results)

  def _assign(self) -> None:
    """Gives each idle worker the next chunk of queued items and starts its deadline."""
    for worker in self._workers:
      with self._lock:
        if worker.in_flight or not self._queue:
          continue
        size = min(_MAX_CHUNK, -(-len(self._queue) // len(self._workers)))
        chunk = [self._queue.popleft() for _ in range(size)]
      worker.in_flight.extend(chunk)
      worker.deadline = time.monotonic() + self.timeout_s
      try:
        worker.conn.send([payload for _, _, payload in chunk])
      except (OSError, ValueError):
        self._replace(worker)

  def _collect(self, worker: _Worker) -> None:
    """Reads every result the worker has sent; a dead worker is replaced."""
    try:
      while worker.in_flight and worker.conn.poll():
        self._finish(*worker.in_flight.popleft(), ok=worker.conn.recv())
        worker.deadline = time.monotonic() + self.timeout_s
    except (EOFError, OSError):
      self._replace(worker)

  def _dispatch(self) -> None:
    try:
      self._dispatch_loop()
    except BaseException as e:  # a dispatcher bug must not leave callers waiting forever
      self._fail_pending(e)
      raise
    self._fail_pending(RuntimeError("Verifier closed before the batch finished"))

  def _dispatch_loop(self) -> None:
    while not self._closed:
      self._assign()
      busy = [w for w in self._workers if w.in_flight]
      wait_s = min((w.deadline for w in busy), default=time.monotonic() + 1) - time.monotonic()
      connection.wait([self._wake_r] + [w.conn for w in busy], timeout=max(wait_s, 0))
      while self._wake_r.poll():
        self._wake_r.recv()
      for worker in busy:
        self._collect(worker)  # also before a deadline check: results may have just arrived
        if worker.in_flight and time.monotonic() > worker.deadline:
          self._replace(worker)

  def _fail_pending(self, error: BaseException) -> None:
    """Every unfinished batch's future raises `error` instead of hanging its caller."""
    with self._lock:
      batches = {id(b): b for b, _, _ in self._queue}
    batches.update({id(b): b for w in self._workers for b, _, _ in w.in_flight})
    for batch in batches.values():
      if not batch.future.done():
        batch.future.set_exception(error)
