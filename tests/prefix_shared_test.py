"""The prompt-once-per-group forward equals the joint forward over repeated prompts: hidden
states, and the gradient of a log-prob loss (plain and LoRA params)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import models
from concise_jax.models import prefix_shared, tiny
from concise_jax.rollout.generate import left_pad
from concise_jax.train import logprobs, lora

G = 3


def _batch():
  prompts_ps, prompt_mask_ps = left_pad([[5, 6, 7, 8], [9, 10]], pad_id=0, bucket=6)
  rng = np.random.default_rng(0)
  tokens_bt = jnp.asarray(rng.integers(3, 60, size=(2 * G, 5)), jnp.int32)
  length_b = np.asarray([5, 2, 0, 4, 1, 3])
  mask_bt = jnp.asarray(np.arange(5)[None] < length_b[:, None], jnp.int32)
  return jnp.asarray(prompts_ps), jnp.asarray(prompt_mask_ps), tokens_bt * mask_bt, mask_bt


def _both(cfg, params, batch):
  prompts_ps, prompt_mask_ps, tokens_bt, mask_bt = batch
  rep = lambda x: jnp.repeat(x, G, axis=0)
  joint = logprobs.completion_hidden(cfg, params, rep(prompts_ps), rep(prompt_mask_ps),
                                     tokens_bt, mask_bt)
  shared = prefix_shared.completion_hidden_shared(cfg, params, prompts_ps, prompt_mask_ps,
                                                  tokens_bt, mask_bt, group_size=G)
  return joint, shared


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
@pytest.mark.parametrize("remat", [False, True])
def test_shared_prompt_forward_equals_the_joint_forward(remat):
  cfg = tiny.tiny_config(remat=remat)
  params = models.init_params(cfg, jax.random.key(0))
  batch = _batch()
  joint, shared = _both(cfg, params, batch)
  mask = np.asarray(batch[3])[..., None] > 0
  np.testing.assert_allclose(np.where(mask, shared, 0), np.where(mask, joint, 0), atol=2e-5)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
@pytest.mark.parametrize("use_lora", [False, True])
def test_gradients_through_the_shared_prompt_equal_the_joint_ones(use_lora):
  cfg = tiny.tiny_config()
  params = models.init_params(cfg, jax.random.key(1))
  batch = _batch()
  tokens_bt, mask_bt = batch[2], batch[3]
  if use_lora:
    targets = lora.parse_targets("w_q,w_v,w_down")
    adapters = lora.init_lora(params, jax.random.key(2), rank=2, targets=targets)
    adapters = jax.tree.map(lambda x: x + 0.05, adapters)   # B = 0 at init: move it off zero
    full = lambda a: lora.side_branch(params, a, alpha=4.0, rank=2)
    trainable = adapters
  else:
    full, trainable = (lambda p: p), params

  def loss(trainable, shared):
    p = full(trainable)
    joint, hidden = _both(cfg, p, batch)
    h = hidden if shared else joint
    logp, _ = logprobs.token_logp_entropy(cfg, p, h, tokens_bt, chunk=2)
    return jnp.sum(logp * mask_bt)

  v_joint, g_joint = jax.value_and_grad(loss)(trainable, False)
  v_shared, g_shared = jax.value_and_grad(loss)(trainable, True)
  np.testing.assert_allclose(v_shared, v_joint, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_shared), jax.tree.leaves(g_joint)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-4)


@pytest.mark.integration  # compiles its own model programs: ~12 s on 2 cores
def test_completion_logp_with_prompt_groups_equals_the_joint_one():
  cfg = tiny.tiny_config()
  params = models.init_params(cfg, jax.random.key(4))
  prompts_ps, prompt_mask_ps, tokens_bt, mask_bt = _batch()
  rep = lambda x: jnp.repeat(x, G, axis=0)
  args = (cfg, params, rep(prompts_ps), rep(prompt_mask_ps), tokens_bt, mask_bt)
  joint = logprobs.completion_logp_entropy(*args, chunk=2)
  shared = logprobs.completion_logp_entropy(*args, chunk=2, prompt_group=G)
  for a, b in zip(shared, joint):
    np.testing.assert_allclose(a * mask_bt, b * mask_bt, atol=2e-5)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_update_with_shared_prompts_equals_the_per_row_update():
  """One training step (KL reference pass, two PPO epochs: old log-prob pass) with
  `train.share_prompt` on and off: same rollout, same loss and the same new params."""
  from concise_jax import train  # pylint: disable=import-outside-toplevel
  from configs import grpo  # pylint: disable=import-outside-toplevel
  results = []
  for share in (True, False):
    config = grpo.get_config("model=tiny,runlocal")
    config.kl.coef = 0.05
    config.train.ppo_epochs = 2
    config.train.share_prompt = share
    with train.make_trainer(config) as trainer:
      state, metrics = train.train_step(trainer, trainer.state, 0)
      results.append((jax.device_get(state.params), metrics))
  (shared, m_shared), (per_row, m_per_row) = results
  np.testing.assert_allclose(m_shared["loss/total"], m_per_row["loss/total"], rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(m_shared["loss/kl"], m_per_row["loss/kl"], rtol=1e-4, atol=1e-7)
  for a, b in zip(jax.tree.leaves(shared), jax.tree.leaves(per_row)):
    np.testing.assert_allclose(a, b, atol=1e-5)
