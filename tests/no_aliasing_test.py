"""The update donates the train state while reading the frozen trees (KL reference, LoRA base):
no buffer may back both. On a pure data-parallel mesh every tiny parameter is replicated, the
case where `device_put` used to hand the reference the very buffers that were trained."""
import jax
import pytest

from concise_jax import distributed
from concise_jax import train
from configs import grpo_lambda


@pytest.mark.integration  # compiles its own model programs: ~4 s on 2 cores
@pytest.mark.parametrize("mesh", [(8, 1, 1), (1, 1, 8), (1, 1, 1)])  # a trainer compile each
def test_train_state_and_kl_reference_share_no_buffer(mesh, tmp_path):
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.kl.coef = 0.05
  config.mesh.shape = mesh
  with train.make_trainer(config) as r:
    assert "ref" in r.frozen
    assert distributed.shared_buffers(r.state, r.frozen) == []
    # Same values, different buffers: the reference is a real copy.
    jax.tree.map(lambda a, b: (a == b).all() or pytest.fail("reference differs"),
                 r.state.params, r.frozen["ref"])


def test_shared_buffers_detects_an_alias():
  tree = {"w": jax.numpy.ones((4, 4))}
  assert distributed.shared_buffers(tree, {"again": tree["w"]}) == ["['w']"]
  assert distributed.shared_buffers(tree, distributed.put(tree, tree["w"].sharding)) == []
