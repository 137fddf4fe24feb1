"""The value head: T + 1 completion values at the right positions, the trunk stop-gradient,
and a critic loss that falls on a toy task with a known value."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from concise_jax import models
from concise_jax.advantages import gae
from concise_jax.models import tiny, value_head


def _model():
  cfg = tiny.tiny_config()
  return cfg, models.init_params(cfg, jax.random.PRNGKey(0))


def test_completion_values_are_read_at_the_state_before_each_token():
  values_bs = jnp.arange(10.0).reshape(1, 10)
  out = value_head.completion_values_bt1(values_bs, prompt_len=6)   # T = 4 completion tokens
  np.testing.assert_array_equal(out, [[5.0, 6.0, 7.0, 8.0, 9.0]])   # V(s_0) = last prompt pos


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_trunk_gets_no_gradient_unless_asked():
  cfg, params = _model()
  head = {"w": jnp.ones((cfg.d_model,)), "b": jnp.zeros(())}
  tokens = jnp.asarray([[1, 2, 3, 4]])
  mask = jnp.ones_like(tokens)
  loss = lambda p, trunk: value_head.values_bs(cfg, p, head, tokens, mask,
                                               trunk_grad=trunk).sum()
  frozen = jax.grad(loss)(params, False)
  assert all(float(jnp.abs(g).sum()) == 0.0 for g in jax.tree.leaves(frozen))
  trained = jax.grad(loss)(params, True)
  assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(trained)) > 0.0


def test_critic_loss_falls_to_the_known_value_on_a_toy_task():
  # The value of a sequence is 1 if it starts with token 5, else 0 (a known function of the
  # state); the head on the frozen trunk must learn it at every position.
  cfg, params = _model()
  rng = np.random.default_rng(0)
  tokens = rng.integers(6, cfg.vocab_size, size=(16, 6))
  tokens[:8, 0] = 5
  tokens = jnp.asarray(tokens)
  mask = jnp.ones_like(tokens)
  target_bs = jnp.broadcast_to(jnp.asarray([1.0] * 8 + [0.0] * 8)[:, None], tokens.shape)
  head = value_head.init_value_head(cfg)
  tx = optax.adam(0.05)
  opt = tx.init(head)

  @jax.jit
  def step(head, opt):
    def loss_fn(h):
      v = value_head.values_bs(cfg, params, h, tokens, mask)
      return gae.clipped_value_loss_bt(v, jax.lax.stop_gradient(v), target_bs, clip=1e9).mean()
    loss, g = jax.value_and_grad(loss_fn)(head)
    updates, opt = tx.update(g, opt)
    return optax.apply_updates(head, updates), opt, loss

  losses = []
  for _ in range(150):
    head, opt, loss = step(head, opt)
    losses.append(float(loss))
  assert losses[0] == 0.5 * 0.5          # zero head: ½·mean((0 − target)²) with half ones
  assert losses[-1] < 0.15 * losses[0], losses[::30]   # measured: 0.25 → 0.027
