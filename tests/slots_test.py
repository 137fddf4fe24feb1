"""T-PPO slot bookkeeping: over random response lengths and windows, every prompt of the stream
is admitted once, scored exactly once with its G complete lengths, and never lost."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from concise_jax.rollout import slots

_admit, _advance = jax.jit(slots.admit), jax.jit(slots.advance)
_complete, _release = jax.jit(slots.complete_g), jax.jit(slots.release)


def _simulate(target_ng, num_groups, window, cap):
  n, g = target_ng.shape
  table = slots.init_slots(num_groups, g)
  stream, scored, row_steps, useful = 0, {}, 0, 0
  for _ in range(10_000):
    ids = np.arange(stream, stream + num_groups)
    table, taken = _admit(table, jnp.asarray(np.where(ids < n, ids, -1), jnp.int32))
    stream = min(n, stream + int(taken))
    prompt_g = np.asarray(table.prompt_index_g)
    if (prompt_g < 0).all():
      break
    want_s = np.repeat(prompt_g, g)
    length_s = np.asarray(table.length_s)
    target_s = np.where(want_s >= 0, np.minimum(target_ng[np.maximum(want_s, 0),
                                                          np.tile(np.arange(g), num_groups)],
                                                cap), 0)
    live = np.asarray(slots.alive_s(table))
    new_s = np.where(live, np.minimum(window, target_s - length_s), 0)
    row_steps += window * len(live)
    useful += int(new_s.sum())
    table = _advance(table, jnp.asarray(new_s, jnp.int32),
                     jnp.asarray(length_s + new_s >= target_s))
    done = np.asarray(_complete(table))
    for gi in np.flatnonzero(done):
      pid = int(table.prompt_index_g[gi])
      assert pid not in scored, f"prompt {pid} scored twice"
      scored[pid] = np.asarray(table.length_s).reshape(num_groups, g)[gi].copy()
    table = _release(table, jnp.asarray(done))
  return scored, useful / max(row_steps, 1)


@pytest.mark.integration  # hypothesis examples through the slot table: ~6 s on 2 cores
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), g=st.integers(1, 3), num_groups=st.integers(1, 3),
       window=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_every_prompt_scored_exactly_once_with_complete_lengths(n, g, num_groups, window, seed):
  cap = 12
  target_ng = np.random.default_rng(seed).integers(1, 20, size=(n, g))
  scored, _ = _simulate(target_ng, num_groups, window, cap)
  assert sorted(scored) == list(range(n))                     # none lost, none extra
  for pid, lengths in scored.items():
    np.testing.assert_array_equal(lengths, np.minimum(target_ng[pid], cap))


def test_admission_fills_free_groups_in_order_and_counts_what_it_took():
  table = slots.init_slots(3, 2)
  table, taken = slots.admit(table, jnp.asarray([7, 8, 9], jnp.int32))
  assert int(taken) == 3 and table.prompt_index_g.tolist() == [7, 8, 9]
  table = slots.advance(table, jnp.asarray([2, 2, 2, 2, 2, 2]),
                        jnp.asarray([True, True, False, True, True, True]))
  done = slots.complete_g(table)
  assert done.tolist() == [True, False, True]                 # group 1 still has a live row
  table = slots.release(table, done)
  table, taken = slots.admit(table, jnp.asarray([10, 11, 12], jnp.int32))
  assert int(taken) == 2 and table.prompt_index_g.tolist() == [10, 8, 11]
  assert table.length_s.tolist() == [0, 0, 2, 2, 0, 0]        # refilled rows restart at 0
  assert table.admitted_g.tolist() == [3, 1, 4]
