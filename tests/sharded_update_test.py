"""The update on 8-device meshes equals the one-device update (with and without the
prompt-once-per-group forward)."""
import jax
import numpy as np
import pytest

from tests import train_step_test as ts


@pytest.mark.integration   # multi-mesh: compiles the update for an 8-device mesh too
@pytest.mark.parametrize("mesh", [
    (2, 2, 2),   # 2 prompts per micro-batch over 4 batch devices: per-row forward
    (2, 1, 4),   # 2 prompts over 2 batch devices: each prompt computed once, sharded
])
def test_update_on_an_8_device_mesh_equals_the_single_device_update(mesh):
  assert jax.device_count() >= 8          # conftest simulates 8 CPU devices
  single = ts.Setup(ts.tiny_config())
  config = ts.tiny_config()
  config.mesh.shape = mesh
  sharded = ts.Setup(config)
  batch, _ = single.batch(single.fresh_state(), jax.random.PRNGKey(11), ts.starts_with_digit)
  state_1, m_1 = single.fns.update(single.fresh_state(), single.frozen, batch)
  state_8, m_8 = sharded.fns.update(sharded.fresh_state(), sharded.frozen, batch)
  leaves = jax.tree.leaves(state_8.params)
  assert any(len(x.sharding.device_set) == 8 for x in leaves)
  assert any(not x.sharding.is_fully_replicated for x in leaves)
  for key in ("loss/total", "loss/kl", "optim/grad_norm", "policy/entropy", "adv/abs_mean"):
    np.testing.assert_allclose(float(m_1[key]), float(m_8[key]), rtol=1e-5, atol=1e-6,
                               err_msg=key)
  assert float(m_1["optim/grad_norm"]) > 0
  # Adam moves each param by ~lr = 1e-3; reduction order across devices perturbs it by ~1e-6.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5),
               jax.device_get(state_1.params), jax.device_get(state_8.params))
