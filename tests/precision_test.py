"""bf16 compute with float32 master weights: log-probs and the policy loss stay close to the
float32 run on the tiny model, and the parameters / optimizer moments stay float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.train import loop
from concise_jax.train import trainer as trainer_lib
from configs import grpo


def _model(dtype):
  config = grpo.get_config("model=tiny,runlocal")
  config.model.dtype = dtype
  return trainer_lib.load_model(config)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_bf16_compute_logprobs_close_to_f32():
  from concise_jax.models import transformer  # pylint: disable=import-outside-toplevel
  cfg32, params, _ = _model("float32")
  cfg16, params16, _ = _model("bfloat16")
  assert cfg16.dtype == "bfloat16" and cfg16.param_dtype == "float32"
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params16))
  tokens = jax.random.randint(jax.random.key(1), (4, 24), 3, cfg32.vocab_size)
  logp = lambda cfg: jax.nn.log_softmax(
      transformer.forward(cfg, params, tokens)[0].astype(jnp.float32), axis=-1)
  lp32, lp16 = logp(cfg32), logp(cfg16)
  taken = lambda lp: jnp.take_along_axis(lp[:, :-1], tokens[:, 1:, None], -1)[..., 0]
  diff = np.abs(np.asarray(taken(lp32) - taken(lp16)))
  # bf16 keeps 8 mantissa bits (relative error 2^-9 per op); over the tiny model's log-probs
  # (|logp| ~ 4) that is a few hundredths at most, and far from zero (it is really bf16).
  assert 1e-4 < diff.max() < 0.1, diff.max()
  assert diff.mean() < 0.02
  # The sequence-level quantity the loss sums: mean log-prob per token.
  np.testing.assert_allclose(np.asarray(taken(lp16)).mean(), np.asarray(taken(lp32)).mean(),
                             atol=0.01)


@pytest.mark.integration   # compiles a second full update (bf16) next to the f32 one
def test_bf16_update_loss_close_to_f32_and_state_stays_f32():
  from tests import train_step_test as ts  # pylint: disable=import-outside-toplevel
  f32 = ts.Setup(ts.tiny_config())
  config = ts.tiny_config()
  config.model.dtype = "bfloat16"
  bf16 = ts.Setup(config)
  batch, _ = f32.batch(f32.fresh_state(), jax.random.PRNGKey(5), ts.starts_with_digit)
  state32, m32 = f32.fns.update(f32.fresh_state(), f32.frozen, batch)
  state16, m16 = bf16.fns.update(bf16.fresh_state(), bf16.frozen, batch)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state16.params))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state16.opt_state)
             if jnp.issubdtype(x.dtype, jnp.floating))
  for key in ("loss/total", "policy/entropy", "optim/grad_norm"):
    a, b = float(m32[key]), float(m16[key])
    assert abs(a - b) <= 0.02 * max(1.0, abs(a)), (key, a, b)
  # On-policy, the surrogate's value is -mean(A) whatever the log-probs; the entropy and the
  # gradient are computed from bf16 logits and must differ a little (bf16 really ran).
  assert float(m32["policy/entropy"]) != float(m16["policy/entropy"])
  assert float(m32["optim/grad_norm"]) != float(m16["optim/grad_norm"])
