"""Length-bucketed micro-batches: bucket lengths, the group-preserving sort, and the bucketed
update on an 8-device mesh equal to the unbucketed one-device update."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.train import step
from tests import train_step_test as ts


def test_bucket_lengths_are_fractions_of_the_cap_rounded_up():
  assert step.bucket_lengths(128, 4) == (32, 64, 96, 128)
  assert step.bucket_lengths(10, 3) == (4, 7, 10)
  assert step.bucket_lengths(16, 0) == step.bucket_lengths(16, 1) == (16,)
  assert step.bucket_lengths(2, 4) == (1, 2)              # duplicates collapse


def test_sort_keeps_groups_whole_and_orders_them_by_their_longest_row():
  mask_bt = (np.arange(16)[None, :] < ts.ENDS[:, None]).astype(np.float32)
  ends_b = step._row_ends(jnp.asarray(mask_bt))             # pylint: disable=protected-access
  np.testing.assert_array_equal(ends_b, ts.ENDS)
  perm_b = np.asarray(step._length_order(ends_b, 4))       # pylint: disable=protected-access
  np.testing.assert_array_equal(perm_b.reshape(4, 4) // 4, [[1] * 4, [3] * 4, [2] * 4, [0] * 4])
  np.testing.assert_array_equal(perm_b.reshape(4, 4) % 4, [list(range(4))] * 4)
  x = jnp.arange(32).reshape(16, 2)
  parts = step._sorted_split(x, jnp.asarray(perm_b), 4)    # pylint: disable=protected-access
  assert parts.shape == (4, 4, 2)
  np.testing.assert_array_equal(step._sorted_merge(parts, jnp.asarray(perm_b)), x)  # pylint: disable=protected-access


def test_row_ends_read_the_last_used_column_not_the_count():
  mask_bt = jnp.asarray([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], jnp.float32)
  np.testing.assert_array_equal(step._row_ends(mask_bt), [3, 0, 4])  # pylint: disable=protected-access


@pytest.mark.integration   # multi-mesh: compiles the bucketed update for an 8-device mesh
def test_bucketed_update_on_an_8_device_mesh_equals_the_single_device_update():
  assert jax.device_count() >= 8          # conftest simulates 8 CPU devices
  single = ts.Setup(ts.bucket_config("token_mean", buckets=0, micro_batch=0))
  config = ts.bucket_config("token_mean", buckets=4, micro_batch=8)
  config.mesh.shape = (2, 1, 4)
  sharded = ts.Setup(config)
  keep_b = np.repeat([True, True, False, True], 4)
  batch, _ = single.batch(single.fresh_state(), jax.random.PRNGKey(11), ts.starts_with_digit,
                          keep_b=keep_b)
  ts.assert_same_update(sharded, single, ts.with_lengths(batch, ts.ENDS))


def test_bucket_chunks_divide_the_bucket_unless_the_divisor_is_too_small():
  assert [step.bucket_chunk(n, 64) for n in (32, 64, 96, 128)] == [64, 64, 32, 64]
  assert step.bucket_chunk(100, 64) == 64        # gcd 4 < 64 / 4: pad instead
