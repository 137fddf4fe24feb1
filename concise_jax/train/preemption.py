"""Preemption: SIGTERM / SIGINT end a run at a step boundary with a checkpoint, not a traceback.

    with preemption.Watch() as watch:
      for step ...:
        if preemption.agree(watch.requested):   # every process decides the same step
          save(); break

Schedulers and pods preempt with SIGTERM (then SIGKILL after a grace period); Ctrl-C sends
SIGINT. The handler only sets a flag: the current step finishes, the loop saves the last
completed step, flushes metrics and returns `preempted=True`; `main` exits with
`EXIT_PREEMPTED` and one line, and rerunning the same command resumes. A second signal of the
same kind restores the default behaviour (a second Ctrl-C interrupts at once).
"""
import signal
import threading
from collections.abc import Callable

from concise_jax import distributed

# EX_TEMPFAIL (sysexits.h): "try again later" — what a requeueing scheduler should read.
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Watch:
  """Context manager: while active, SIGTERM / SIGINT set `requested` instead of killing.

  Handlers can only be installed from the main thread; elsewhere (a notebook worker thread)
  the watch is inert and the signals keep their old behaviour.
  """

  def __init__(self, signals=SIGNALS):
    self.signals, self.received = tuple(signals), None
    self._old: dict[int, object] = {}

  @property
  def requested(self) -> bool:
    return self.received is not None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.received = signal.Signals(signum).name
    # A second signal of the same kind gets the old behaviour (Ctrl-C twice aborts).
    signal.signal(signum, self._old.get(signum, signal.SIG_DFL))

  def __enter__(self) -> "Watch":
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._old[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, old in self._old.items():
      signal.signal(s, old)
    self._old.clear()


# The cross-process agreement used by the host loop: `agree(local flag) -> global flag`.
# Single-process runs return the local flag; multi-process runs OR it over all processes, so
# every process stops after the same step and they save the same checkpoint together. It is a
# collective: every process must call it.
agree: Callable[[bool], bool] = distributed.agree_any
