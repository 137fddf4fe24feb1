"""DLER weight merging wired into training: a workdir whose config turns it on loads as exactly
base + scale · mask · (trained − base), with the mask the magnitude rule selects."""
import jax
import numpy as np
import pytest

from concise_jax.train import checkpoint, loop, weight_merge
from concise_jax.train import trainer as trainer_lib
from configs import grpo

pytestmark = pytest.mark.integration


def test_workdir_with_weight_merge_loads_the_merged_policy(tmp_path):
  c = grpo.get_config("model=tiny,runlocal")
  c.train.steps = 1
  c.train.weight_merge.top_fraction = 0.25
  c.train.weight_merge.scale = 0.5
  loop.run(c, str(tmp_path))
  _, merged, _, step = trainer_lib.load_trained_policy(str(tmp_path))
  assert step == 1
  _, base, _ = trainer_lib.load_model(c)
  trained, _, _ = checkpoint.restore_params(str(tmp_path))
  leaves_base, leaves_trained = jax.tree.leaves(base), jax.tree.leaves(trained)
  leaves_merged = jax.tree.leaves(merged)
  moved = 0
  for b, t, m in zip(leaves_base, leaves_trained, leaves_merged):
    b, t, m = (np.asarray(x, np.float64) for x in (b, t, m))
    delta = np.abs(t - b)
    k = int(np.ceil(0.25 * delta.size))
    threshold = np.sort(delta.reshape(-1))[delta.size - k]
    keep = delta >= threshold
    np.testing.assert_allclose(m, np.where(keep, b + 0.5 * (t - b), b), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(m[~keep], b[~keep])       # unselected entries stay the base
    moved += int(np.sum(keep & (delta > 0)))
  assert moved > 0                                          # one update moved some weights
  masks = weight_merge.update_masks(base, trained, top_fraction=0.25)
  assert sum(int(np.sum(x)) for x in jax.tree.leaves(masks)) >= moved


def test_weight_merge_off_loads_the_trained_policy(tmp_path):
  c = grpo.get_config("model=tiny,runlocal")
  c.train.steps = 1
  loop.run(c, str(tmp_path))
  _, params, _, _ = trainer_lib.load_trained_policy(str(tmp_path))
  trained, _, _ = checkpoint.restore_params(str(tmp_path))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
