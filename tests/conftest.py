"""Test setup: 8 simulated CPU devices compiled without LLVM optimisation, bounded
compiled-program memory maps, and (opt-in) one XLA compilation cache per session.

Both must be set before anything imports jax. With CONCISE_JAX_TEST_CACHE=1 the cache is a
fresh directory per session, set through JAX_* environment variables so the trainer
subprocesses (`python -m concise_jax.main`, the multi-process and fault-injection workers) read
and fill the same one; entries are kept however fast or small the compile. It is off by
default: in a clean-clone CI run XLA aborted the whole integration session (SIGABRT) while
writing one speculative-sampler executable to it, and within one process it saved nothing
(1 hit in 67 compiles; subprocess tests: 20 hits in 21).
"""
import gc
import os
import shutil
import tempfile

import pytest

# The tests' programs are tiny and run once or twice, so XLA:CPU compile time dominates the suite:
# no LLVM optimisation (-O0, no expensive passes) cuts the wall time of compile-bound test files
# by ~40% (transformer_test + train_step_test: 158 s -> 99 s on 2 loaded cores, same results).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8"
                      " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_OWN_CACHE = None
if os.environ.get("CONCISE_JAX_TEST_CACHE", "0") == "1" and (
    "JAX_COMPILATION_CACHE_DIR" not in os.environ):
  _OWN_CACHE = tempfile.mkdtemp(prefix="concise_jax_test_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _OWN_CACHE:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


# Every live XLA:CPU executable keeps ~3 memory maps (code, read-only data, data), and jit caches
# keep every program a test module compiled alive. The integration session reached Linux's
# default limit of 65,530 maps per process (vm.max_map_count) after ~75 tests, and XLA then
# crashed mid-compile (SIGSEGV / SIGABRT, no Python error). Dropping the caches between modules
# once the count is high frees those maps; below the threshold nothing is recompiled.
_MAPS_BEFORE_CLEARING = 20_000


def _memory_map_count() -> int:
  try:
    with open("/proc/self/maps", "rb") as maps:
      return sum(1 for _ in maps)
  except OSError:  # not Linux: the limit does not apply
    return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  yield
  if _memory_map_count() > _MAPS_BEFORE_CLEARING:
    import jax  # pylint: disable=import-outside-toplevel
    jax.clear_caches()
    gc.collect()
