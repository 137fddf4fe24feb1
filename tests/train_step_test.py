"""The jitted update on the tiny model: accumulation == big batch, NaN guard, a toy task.

The config matches resume_test's, so the update and the sampler compile once per session.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import data, sharding
from concise_jax.losses import AGGREGATIONS
from concise_jax.models import transformer
from concise_jax.train import loop, rollout_step, step
from concise_jax.train import trainer as trainer_lib
from configs import common, grpo_lambda


def tiny_config(**optim_overrides):
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.train.steps = 10        # as in resume_test: same compiled update
  for k, v in optim_overrides.items():
    config.optim[k] = v
  return config


class Setup:
  """Model, jitted functions, fresh states and fixed prompts for one config."""

  def __init__(self, config):
    self.config = config
    self.model_cfg, params, self.tokenizer = trainer_lib.load_model(config)
    trainable, frozen, axes = trainer_lib.split_trainable(config, self.model_cfg, params)
    mesh = sharding.make_mesh(config.mesh.shape)
    self.fns = trainer_lib.build_functions(config, self.model_cfg, trainable, frozen, axes, mesh)
    self.trainable = trainable
    self.frozen = jax.device_put(frozen, self.fns.frozen_sh)
    self.examples = data.load_dataset(config.data.dataset, n=config.rollout.prompts_per_step)
    self.fmt = rollout_step.prompt_format(config)
    self.sp = rollout_step.sampling_params(config, self.tokenizer)

  def fresh_state(self):
    return trainer_lib.initial_state(self.config, self.fns, self.trainable, self.config.data.num_prompts)

  def batch(self, state, key, check, keep_b=None):
    params = self.fns.model_params(state.params, self.frozen)
    n = len(self.examples)
    rollout, texts, _ = rollout_step.rollout_batch(
        self.model_cfg, params, self.tokenizer, self.examples, list(range(n)), key, sp=self.sp,
        group_size=self.config.rollout.group_size, fmt=self.fmt, check=check)
    reward_out, _, _ = self.fns.score(state.reward_state, rollout)
    keep_b = np.ones(rollout.length_b.shape, bool) if keep_b is None else keep_b
    return step.UpdateBatch(rollout=rollout, reward_out=jax.device_get(reward_out),
                            keep_b=keep_b), texts


def starts_with_digit(completions, references, kinds):
  """Toy verifier: an answer is "correct" iff it starts with a digit."""
  del references, kinds
  return [bool(c) and c[0].isdigit() for c in completions]


@pytest.fixture(scope="module")
def setup():
  return Setup(tiny_config())


@pytest.mark.parametrize("name", AGGREGATIONS.names())
def test_aggregations_are_linear_so_weights_give_global_normalisers(name):
  aggregate = functools.partial(AGGREGATIONS.get(name), **common.AGGREGATION_DEFAULTS[name])
  rng = np.random.default_rng(0)
  mask_bt = (rng.random((6, 5)) < 0.6).astype(np.float32)
  mask_bt[2] = 0.0                                    # an empty row must not count
  both = jax.jit(lambda loss_nbt, m_bt: (
      jnp.sum(step.aggregation_weights(aggregate, m_bt) * loss_nbt, axis=(1, 2)),
      jax.vmap(aggregate, (0, None))(loss_nbt, m_bt)))
  loss_nbt = rng.normal(size=(3, 6, 5)).astype(np.float32)
  weighted_n, direct_n = both(loss_nbt, mask_bt)
  np.testing.assert_allclose(weighted_n, direct_n, rtol=1e-5, atol=1e-6)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_grad_accumulation_equals_one_big_batch(setup):
  """2 micro-batches of 8 rows vs one of 16: same loss, gradient norm, metrics and params.

  Adam's eps is raised to 1e-4 here: with the default 1e-8 a gradient component of ~1e-8, whose
  sign depends on the summation order, moves its parameter by up to ±lr, so the parameters
  would compare the float rounding of near-zero gradients rather than the accumulation.
  """
  del setup
  small = Setup(tiny_config(eps=1e-4))
  big = Setup(tiny_config(micro_batch=0, eps=1e-4))
  keep_b = np.repeat([True, True, False, True], small.config.rollout.group_size)
  batch, texts = small.batch(small.fresh_state(), jax.random.PRNGKey(7), starts_with_digit,
                             keep_b=keep_b)
  lengths = np.asarray(batch.rollout.length_b)
  assert lengths[:8].sum() != lengths[8:].sum()       # per-micro normalisers would differ
  assert 0 < sum(starts_with_digit(texts, None, None)) < len(texts)
  state_a, m_a = small.fns.update(small.fresh_state(), small.frozen, batch)
  state_b, m_b = big.fns.update(big.fresh_state(), big.frozen, batch)
  for key in ("loss/total", "loss/policy", "loss/kl", "loss/num_tokens", "policy/entropy",
              "policy/clip_frac", "policy/ratio", "optim/grad_norm", "adv/abs_mean"):
    np.testing.assert_allclose(float(m_a[key]), float(m_b[key]), rtol=2e-5, atol=1e-7,
                               err_msg=key)
  assert float(m_a["optim/grad_norm"]) > 0
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
               jax.device_get(state_a.params), jax.device_get(state_b.params))


@pytest.mark.integration  # compiles its own model programs: ~13 s on 2 cores
def test_nonfinite_update_is_flagged_and_not_applied(setup):
  state = setup.fresh_state()
  before = jax.device_get(state.params)
  batch, _ = setup.batch(state, jax.random.PRNGKey(1), starts_with_digit)
  nan_b = np.full(batch.reward_out.rewards_b.shape, np.nan, np.float32)
  batch = batch.replace(reward_out=batch.reward_out.replace(rewards_b=nan_b))
  state, metrics = setup.fns.update(state, setup.frozen, batch)
  assert int(metrics["train/nonfinite"]) == 1
  jax.tree.map(np.testing.assert_array_equal, before, jax.device_get(state.params))


def test_toy_task_loss_decreases(setup):
  """Reward 1 for answers starting with a digit: −P(first token is a digit) must fall."""
  digit_ids = jnp.asarray([setup.tokenizer.encode(str(d))[0] for d in range(10)])
  tokens_ps, mask_ps, _ = rollout_step.encode_prompts(setup.tokenizer, setup.examples, setup.fmt)

  @jax.jit
  def toy_loss(params):
    logits_psv, _ = transformer.forward(setup.model_cfg, params, tokens_ps, mask_bs=mask_ps)
    probs_pv = jax.nn.softmax(logits_psv[:, -1] / setup.sp.temperature)
    return -probs_pv[:, digit_ids].sum(-1).mean()

  state = setup.fresh_state()
  losses = []
  for i in range(6):
    losses.append(float(toy_loss(setup.fns.model_params(state.params, setup.frozen))))
    batch, _ = setup.batch(state, jax.random.PRNGKey(100 + i), starts_with_digit)
    state, metrics = setup.fns.update(state, setup.frozen, batch)
    assert int(metrics["train/nonfinite"]) == 0
  losses.append(float(toy_loss(setup.fns.model_params(state.params, setup.frozen))))
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < losses[0] - 0.015, losses


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_on_policy_update_equals_one_with_a_separate_old_logp_pass(setup):
  """One optimizer step per rollout takes the old log-probs from the training forward itself;
  the result must equal feeding the same policy's log-probs in as precomputed old log-probs."""
  config = tiny_config()
  config.train.recompute_old_logp = False
  explicit = Setup(config)
  batch, _ = setup.batch(setup.fresh_state(), jax.random.PRNGKey(3), starts_with_digit)
  r = batch.rollout
  params = setup.fns.model_params(setup.fresh_state().params, setup.frozen)
  old_logp_bt, _ = jax.jit(functools.partial(
      step._sequence_logp, setup.model_cfg, temperature=step.logp_temperature(setup.config),
      chunk=setup.config.train.logp_chunk))(params, step._sequences(r))
  explicit_batch = batch.replace(rollout=r.replace(old_logp_bt=np.asarray(old_logp_bt)))
  state_a, m_a = setup.fns.update(setup.fresh_state(), setup.frozen, batch)
  state_b, m_b = explicit.fns.update(explicit.fresh_state(), explicit.frozen, explicit_batch)
  assert float(m_a["policy/ratio"]) == 1.0 and float(m_a["policy/clip_frac"]) == 0.0
  for key in ("loss/total", "optim/grad_norm", "train/sampler_logp_gap"):
    np.testing.assert_allclose(float(m_a[key]), float(m_b[key]), rtol=1e-4, atol=1e-6,
                               err_msg=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
               jax.device_get(state_a.params), jax.device_get(state_b.params))


@pytest.mark.parametrize("rows,n,group_size", [(16, 2, 4), (16, 4, 4), (16, 8, 4), (12, 3, 2)])
def test_split_keeps_whole_groups_strided_and_merge_inverts_it(rows, n, group_size):
  x = jnp.arange(rows * 2).reshape(rows, 2)
  parts = step._split(x, n, group_size=group_size)            # pylint: disable=protected-access
  assert parts.shape == (n, rows // n, 2)
  group_of = np.asarray(parts[..., 0]) // 2 // group_size
  if rows % (n * group_size) == 0:    # whole groups: part i holds groups i, i + n, ...
    for i in range(n):
      np.testing.assert_array_equal(np.unique(group_of[i]), np.arange(i, rows // group_size, n))
  np.testing.assert_array_equal(step._merge(parts, group_size), x)  # pylint: disable=protected-access


# Completion ends per row (T = 16, 4 groups of 4): group maxima 3, 16, 7, 10 fall in the
# buckets 4, 16, 8 and 12 of `length_buckets=4`.
ENDS = np.array([3, 1, 2, 3, 16, 5, 9, 12, 7, 7, 2, 6, 10, 4, 8, 1])


def with_lengths(batch, ends_b):
  """The batch with completions cut to `ends_b` tokens (a realistic spread of lengths)."""
  r = batch.rollout
  keep_bt = np.arange(r.mask_bt.shape[1])[None, :] < np.asarray(ends_b)[:, None]
  rollout = r.replace(tokens_bt=np.where(keep_bt, r.tokens_bt, 0),
                      mask_bt=keep_bt.astype(np.float32),
                      old_logp_bt=np.where(keep_bt, r.old_logp_bt, 0.0),
                      length_b=np.asarray(ends_b, np.int32),
                      truncated_b=np.asarray(ends_b) == r.mask_bt.shape[1])
  return batch.replace(rollout=rollout)


def bucket_config(aggregation, *, buckets, micro_batch, lora_rank=0):
  """KL on and two PPO epochs: the reference and old log-prob passes bucket too."""
  config = tiny_config(micro_batch=micro_batch, length_buckets=buckets, eps=1e-4)
  config.aggregation.name = aggregation
  config.kl.coef = 0.05
  config.train.ppo_epochs = 2
  config.model.lora.rank = lora_rank
  return config


def assert_same_update(small, big, batch, rtol=1e-5):
  state_a, m_a = small.fns.update(small.fresh_state(), small.frozen, batch)
  state_b, m_b = big.fns.update(big.fresh_state(), big.frozen, batch)
  for key in ("loss/total", "loss/policy", "loss/kl", "loss/num_tokens", "policy/entropy",
              "policy/ratio", "optim/grad_norm", "train/sampler_logp_gap"):
    np.testing.assert_allclose(float(m_a[key]), float(m_b[key]), rtol=rtol, atol=1e-7,
                               err_msg=key)
  assert float(m_a["optim/grad_norm"]) > 0
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5),
               jax.device_get(state_a.params), jax.device_get(state_b.params))
  return m_a


# Each case compiles two updates (~3 min on a loaded 2-core machine): integration.
@pytest.mark.integration
@pytest.mark.parametrize("aggregation,lora_rank", [
    ("token_mean", 0), ("token_mean", 4),
    ("seq_mean_token_mean", 0), ("seq_mean_token_sum", 0), ("seq_mean_token_sum_norm", 4)])
def test_length_bucketed_accumulation_equals_one_big_batch(setup, aggregation, lora_rank):
  """4 micro-batches of one group each, cut to buckets of 4, 8, 12 and 16 tokens, vs one
  unbucketed micro-batch of 16 rows: same metrics and params (refill padding rows, LoRA)."""
  del setup
  small = Setup(bucket_config(aggregation, buckets=4, micro_batch=4, lora_rank=lora_rank))
  big = Setup(bucket_config(aggregation, buckets=0, micro_batch=0, lora_rank=lora_rank))
  keep_b = np.repeat([True, True, False, True], small.config.rollout.group_size)
  batch, _ = small.batch(small.fresh_state(), jax.random.PRNGKey(7), starts_with_digit,
                         keep_b=keep_b)
  assert batch.rollout.mask_bt.shape[1] == 16
  assert_same_update(small, big, with_lengths(batch, ENDS))
