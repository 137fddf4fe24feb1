"""Remat policies: the same gradients under "none", "dots" and "full", and the compiled
backward keeps less temporary memory the more it recomputes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import models
from concise_jax.models import tiny


def _loss(cfg, params, tokens):
  logits, _ = models.forward(cfg, params, tokens)
  return jax.nn.log_softmax(logits)[..., 3].mean()


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_policies_give_the_same_gradient_and_order_memory():
  base = tiny.tiny_config()
  params = models.init_params(base, jax.random.key(0))
  tokens = jnp.asarray(np.random.default_rng(0).integers(3, 60, (4, 48)), jnp.int32)
  grads, temp = {}, {}
  for policy in ("none", "dots", "full"):
    cfg = base.replace(remat=policy)
    fn = jax.jit(jax.grad(lambda p, cfg=cfg: _loss(cfg, p, tokens)))
    compiled = fn.lower(params).compile()
    temp[policy] = compiled.memory_analysis().temp_size_in_bytes
    grads[policy] = fn(params)
  for policy in ("dots", "full"):
    for a, b in zip(jax.tree.leaves(grads[policy]), jax.tree.leaves(grads["none"])):
      np.testing.assert_allclose(a, b, atol=1e-6)
  assert temp["full"] <= temp["dots"] <= temp["none"], temp


def test_booleans_map_to_policies_and_unknown_names_fail():
  assert tiny.tiny_config(remat=True).remat_policy == "full"
  assert tiny.tiny_config(remat=False).remat_policy == "none"
  with pytest.raises(ValueError, match="valid choices: none, dots, full"):
    tiny.tiny_config().replace(remat="some").remat_policy  # pylint: disable=expression-not-assigned
