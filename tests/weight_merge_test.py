"""DLER update-selective merging on small trees with hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.train import weight_merge


def _trees():
  base = {"a": jnp.zeros(4), "b": jnp.ones((2, 2))}
  tuned = {"a": jnp.asarray([1.0, -4.0, 2.0, 0.5]), "b": jnp.asarray([[1.0, 3.0], [1.0, 1.0]])}
  return base, tuned


def test_per_tensor_keeps_top_quarter_of_each_leaf():
  base, tuned = _trees()
  merged = weight_merge.update_selective_merge(base, tuned)       # top 25 %, scale 0.7
  # a: |Δ| = [1, 4, 2, .5], k = ceil(.25·4) = 1 → only −4 kept → 0.7·(−4) = −2.8
  # b: Δ = [[0, 2], [0, 0]], k = 1 → only the 2 → 1 + 0.7·2 = 2.4
  np.testing.assert_allclose(merged["a"], [0, -2.8, 0, 0], rtol=1e-6)
  np.testing.assert_allclose(merged["b"], [[1, 2.4], [1, 1]], rtol=1e-6)


def test_global_ranking_and_ties():
  base, tuned = _trees()
  merged = weight_merge.update_selective_merge(base, tuned, per_tensor=False)
  # all |Δ| = [1, 4, 2, .5, 0, 2, 0, 0], k = ceil(.25·8) = 2 → 2nd largest = 2 → both 2s tie
  # and are kept (3 entries): a = [0, −2.8, 1.4, 0], b[0, 1] = 1 + 1.4 = 2.4.
  np.testing.assert_allclose(merged["a"], [0, -2.8, 1.4, 0], rtol=1e-6)
  np.testing.assert_allclose(merged["b"], [[1, 2.4], [1, 1]], rtol=1e-6)
  masks = weight_merge.update_masks(base, tuned, per_tensor=False)
  assert sum(int(m.sum()) for m in jax.tree.leaves(masks)) == 3


@pytest.mark.parametrize("per_tensor", [True, False])
def test_limits(per_tensor):
  base, tuned = _trees()
  same = weight_merge.update_selective_merge(base, tuned, top_fraction=0.0, per_tensor=per_tensor)
  jax.tree.map(np.testing.assert_array_equal, same, base)          # nothing kept
  full = weight_merge.update_selective_merge(base, tuned, top_fraction=1.0, scale=1.0,
                                             per_tensor=per_tensor)
  jax.tree.map(np.testing.assert_array_equal, full, tuned)         # θ_base + Δ = θ_tuned


def test_dtype_kept_and_jit():
  base = {"w": jnp.zeros((2, 2), jnp.bfloat16)}
  tuned = {"w": jnp.asarray([[0.5, -1.0], [0.25, 0.0]], jnp.bfloat16)}
  merged = jax.jit(weight_merge.update_selective_merge)(base, tuned)
  assert merged["w"].dtype == jnp.bfloat16
  # k = 1 → −1 kept → 0.7·(−1) = −0.7 (−0.69921875 in bf16)
  np.testing.assert_allclose(np.asarray(merged["w"], np.float32),
                             [[0, -0.69921875], [0, 0]])
