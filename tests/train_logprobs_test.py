"""Chunked sampled-token log-probs and entropies == the full-logits version, values and grads."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import models
from concise_jax.models import tiny
from concise_jax.train import logprobs
from concise_jax.train import trainer as trainer_lib


@pytest.fixture(scope="module")
def model():
  cfg = tiny.tiny_config(remat=True)   # as `trainer_lib.load_model` builds it (one compiled init)
  return cfg, trainer_lib.init_params(cfg, jax.random.PRNGKey(0))


def _value_and_grads(fn, cfg, params, chunk=None):
  """sum(w·logp) + sum(w'·entropy) and its gradients w.r.t. the embedding and hidden states."""
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  hidden_btd = jax.random.normal(k1, (3, 11, cfg.d_model))
  tokens_bt = jax.random.randint(k2, (3, 11), 0, cfg.vocab_size)
  w_bt = jax.random.normal(k3, (2, 3, 11))
  kwargs = {"temperature": 0.7} if chunk is None else {"temperature": 0.7, "chunk": chunk}

  def objective(embed, hidden):
    logp, ent = fn(cfg, {**params, "embed": embed}, hidden, tokens_bt, **kwargs)
    return jnp.sum(w_bt[0] * logp) + jnp.sum(w_bt[1] * ent), (logp, ent)

  return jax.jit(jax.value_and_grad(objective, (0, 1), has_aux=True))(params["embed"],
                                                                        hidden_btd)


@pytest.fixture(scope="module")
def naive(model):
  return _value_and_grads(logprobs.token_logp_entropy_naive, *model)


@pytest.mark.integration  # compiles its own model programs: ~15 s on 2 cores
@pytest.mark.parametrize("chunk", [5, 11])   # a padded tail chunk; a single chunk
def test_chunked_equals_naive_values_and_grads(model, naive, chunk):
  cfg, _ = model
  (val_c, (logp_c, ent_c)), grads_c = _value_and_grads(logprobs.token_logp_entropy, *model,
                                                       chunk=chunk)
  (val_n, (logp_n, ent_n)), grads_n = naive
  np.testing.assert_allclose(logp_c, logp_n, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ent_c, ent_n, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(val_c, val_n, rtol=1e-5)
  for g_c, g_n in zip(grads_c, grads_n):
    np.testing.assert_allclose(g_c, g_n, rtol=1e-4, atol=1e-5)
  # Sanity of the reference itself: log-probs are log-probs, entropy within [0, log V].
  assert np.all(np.asarray(logp_n) <= 0)
  assert np.all((np.asarray(ent_n) >= 0) & (np.asarray(ent_n) <= np.log(cfg.vocab_size) + 1e-4))


def test_completion_hidden_predicts_each_completion_token(model):
  """Hidden state S-1+t of [prompt | completion] equals the forward's state before token t."""
  cfg, params = model
  prompt_ps = jnp.asarray([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]], jnp.int32)
  pmask_ps = jnp.asarray([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], jnp.float32)
  tokens_bt = jnp.asarray([[20, 21, 1, 0], [22, 23, 24, 25]], jnp.int32)
  mask_bt = jnp.asarray([[1, 1, 1, 0], [1, 1, 1, 1]], jnp.float32)
  # Row 0 without its padding: prompt 5 6 7, completion 20 21 1.
  seq = jnp.asarray([[5, 6, 7, 20, 21, 1]], jnp.int32)

  @jax.jit
  def run(params):
    hidden_btd = logprobs.completion_hidden(cfg, params, prompt_ps, pmask_ps, tokens_bt,
                                            mask_bt)
    return hidden_btd, models.forward(cfg, params, seq, return_logits=False)[0]

  hidden_btd, ref_bsd = run(params)
  np.testing.assert_allclose(hidden_btd[0, :3], ref_bsd[0, 2:5], rtol=1e-4, atol=1e-5)
