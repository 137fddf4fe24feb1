"""SIGTERM / SIGINT become a flag checked at step boundaries; agreement defaults to local."""
import os
import signal

import pytest

from concise_jax.train import preemption


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_sets_the_flag_instead_of_killing(sig):
  before = signal.getsignal(sig)
  with preemption.Watch() as watch:
    assert not watch.requested
    os.kill(os.getpid(), sig)
    assert watch.requested and watch.received == sig.name
    # The second signal gets the old behaviour back (Ctrl-C twice aborts).
    assert signal.getsignal(sig) == before
  assert signal.getsignal(sig) == before


def test_handlers_are_restored_after_the_run():
  before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
  with preemption.Watch():
    assert all(signal.getsignal(s) != before[s] for s in preemption.SIGNALS)
  assert {s: signal.getsignal(s) for s in preemption.SIGNALS} == before


def test_agree_is_the_local_flag_on_one_process():
  assert preemption.agree(True) is True and preemption.agree(False) is False
  assert preemption.EXIT_PREEMPTED not in (0, 1, 2, 3)
