"""LoRA: zero-init is the base model, the merge formula, and an update that trains adapters only.

The update here also runs 2 PPO epochs × 2 minibatches, so it checks that old log-probs stay
fixed across epochs (the ratio moves away from 1) and that every optimizer step is taken.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import models, sharding, testing, types
from concise_jax.models import tiny
from concise_jax.train import lora, step
from concise_jax.train import trainer as trainer_lib
from configs import grpo


@pytest.fixture(scope="module")
def base():
  cfg = tiny.tiny_config(remat=True)   # as `trainer_lib.load_model` builds it (one compiled init)
  return cfg, trainer_lib.init_params(cfg, jax.random.PRNGKey(0))


@pytest.mark.integration  # compiles its own model programs: ~6 s on 2 cores
def test_zero_init_leaves_params_and_logits_unchanged(base):
  cfg, params = base
  tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6) + 4

  @jax.jit
  def run(params):
    adapters = lora.init_lora(params, jax.random.PRNGKey(1), rank=4,
                              targets=tuple(lora.TARGETS))
    merged = lora.merge(params, adapters, alpha=8.0, rank=4)
    return merged, models.forward(cfg, params, tokens)[0], models.forward(cfg, merged, tokens)[0]

  merged, logits_a, logits_b = run(params)
  jax.tree.map(np.testing.assert_array_equal, params, merged)
  np.testing.assert_array_equal(logits_a, logits_b)


def test_merge_is_w_plus_scaled_a_at_b(base):
  _, params = base

  @jax.jit
  def run(params):
    adapters = lora.init_lora(params, jax.random.PRNGKey(1), rank=2, targets=("w_o", "w_up"))
    adapters = jax.tree.map(lambda x: x + 0.1, adapters)       # non-zero B
    return adapters, lora.merge(params, adapters, alpha=4.0, rank=2)

  adapters, merged = run(params)
  a, b = adapters["layers"]["w_o"]["a"], adapters["layers"]["w_o"]["b"]   # [L,N,H,r], [L,r,D]
  expected = params["layers"]["w_o"] + 2.0 * jnp.einsum("lnhr,lrd->lnhd", a, b)
  np.testing.assert_allclose(merged["layers"]["w_o"], expected, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(merged["layers"]["w_q"], params["layers"]["w_q"])
  axes = lora.lora_axes(models.param_axes(tiny.tiny_config()), ("w_o",))
  assert axes["layers"]["w_o"] == {"a": ("layers", "heads", "head_dim", "lora_rank"),
                                   "b": ("layers", "lora_rank", "embed")}


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_side_branch_equals_merged_weights_in_logits_and_adapter_gradients(base):
  """The training forward's x·A·B branch and the merged W + A·B are the same function of A, B.

  Compared in float64: the two forms sum the same products in different orders, and in
  float32 the adapter gradients (terms up to ~40) differed by up to 2e-4 on some CPUs.
  """
  with jax.enable_x64(True):
    _side_branch_vs_merged(*base)


def _side_branch_vs_merged(cfg, params):
  cfg = cfg.replace(dtype="float64", param_dtype="float64")
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
  tokens = jnp.arange(14, dtype=jnp.int32).reshape(2, 7) + 3
  adapters = lora.init_lora(params, jax.random.PRNGKey(2), rank=3, targets=tuple(lora.TARGETS))
  adapters = jax.tree.map(lambda x: x + 0.05, adapters)          # non-zero B
  weights = jax.random.normal(jax.random.PRNGKey(3), (2, 7, cfg.vocab_size), jnp.float64)

  def loss(adapters, combine):
    logits, _ = models.forward(cfg, combine(params, adapters, alpha=6.0, rank=3), tokens)
    return jnp.sum(weights * jax.nn.log_softmax(logits)), logits

  grad = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
  (g_side, logits_side), (g_merged, logits_merged) = (grad(adapters, lora.side_branch),
                                                      grad(adapters, lora.merge))
  np.testing.assert_allclose(logits_side, logits_merged, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4),
               g_side, g_merged)
  assert float(jnp.abs(g_side["layers"]["w_down"]["a"]).max()) > 0


def test_unknown_target_lists_valid_choices():
  with pytest.raises(ValueError, match="w_gate"):
    lora.parse_targets("w_q,w_qq")


def _fixed_batch(group_size=4, prompts=4, t=8, s=8):
  rng = np.random.default_rng(0)
  b = group_size * prompts
  lengths = rng.integers(2, t + 1, b)
  rollout = testing.make_rollout(
      correct=rng.random(b) < 0.5, length=lengths, max_len=t, group_size=group_size,
      prompt_tokens_bs=rng.integers(4, 40, (b, s)).astype(np.int32),
      prompt_mask_bs=np.ones((b, s), np.float32))
  rollout = rollout.replace(tokens_bt=jnp.asarray(rng.integers(4, 40, (b, t)), jnp.int32)
                            * rollout.mask_bt.astype(jnp.int32))
  reward_out = types.make_reward_output(rollout, rollout.correct_b.astype(jnp.float32))
  return step.UpdateBatch(rollout=rollout, reward_out=reward_out, keep_b=np.ones(b, bool))


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_lora_update_trains_only_adapters_over_ppo_epochs_and_minibatches():
  config = grpo.get_config("model=tiny,runlocal")
  config.model.lora.rank = 2
  config.model.lora.targets = "w_q,w_v"
  config.train.ppo_epochs = 2
  config.optim.num_minibatches = 2
  config.optim.micro_batch = 4
  model_cfg, params, _ = trainer_lib.load_model(config)
  trainable, frozen, axes = trainer_lib.split_trainable(config, model_cfg, params)
  assert set(trainable["layers"]) == {"w_q", "w_v"} and set(frozen) == {"base"}
  fns = trainer_lib.build_functions(config, model_cfg, trainable, frozen,
                             axes, sharding.make_mesh(config.mesh.shape))
  base_before = jax.device_get(params)
  frozen = jax.device_put(frozen, fns.frozen_sh)
  state = trainer_lib.initial_state(config, fns, trainable, 16)
  state, metrics = fns.update(state, frozen, _fixed_batch())
  # Only adapter leaves exist in the trained tree and the optimizer state.
  shapes = {x.shape for x in jax.tree.leaves(state.opt_state) if x.ndim > 0}
  assert shapes <= {x.shape for x in jax.tree.leaves(trainable)}
  jax.tree.map(np.testing.assert_array_equal, base_before, jax.device_get(frozen["base"]))
  for name in ("w_q", "w_v"):
    assert np.abs(np.asarray(state.params["layers"][name]["b"])).max() > 0
  # 2 epochs × 2 minibatches = 4 optimizer steps; epochs after the first see moved params
  # against fixed old log-probs, so the ratio leaves 1.
  counts = [int(x) for x in jax.tree.leaves(state.opt_state) if x.dtype == jnp.int32]
  assert counts and all(c == 4 for c in counts)
  assert float(metrics["policy/approx_kl"]) > 0
  assert int(metrics["train/nonfinite"]) == 0 and float(metrics["loss/kl"]) >= 0
