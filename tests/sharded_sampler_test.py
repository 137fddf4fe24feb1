"""The sampler on an 8-device mesh: rows really spread over devices, and the same key gives
the same tokens and log-probs as on one device (greedy and sampled)."""
import jax
import numpy as np
import pytest

from concise_jax import distributed, models, rollout, sharding
from concise_jax.models import tiny
from concise_jax.rollout import mesh_sampling, sampler

CFG = tiny.tiny_config()


@pytest.fixture(scope="module")
def params():
  return models.init_params(CFG, jax.random.key(0))


def _placed(params, mesh_shape):
  layout = sharding.Layout.of(sharding.make_mesh(mesh_shape), sharding.DEFAULT_RULES)
  shardings = sharding.tree_shardings(layout.mesh, models.param_axes(CFG), layout.rules,
                                      params)
  return distributed.put(params, shardings), layout


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sharded_rollout_equals_one_device(params, temperature):
  tokens, mask = rollout.left_pad([[5, 6, 7], [8, 9, 10, 11, 12], [3], [4, 4]], pad_id=0,
                                  bucket=8)
  sp = rollout.SamplingParams(max_new_tokens=10, temperature=temperature, eos_ids=(2,))
  key = jax.random.key(3)
  single = mesh_sampling.sample(CFG, params, tokens, mask, key, sp, num_samples=4)
  placed, layout = _placed(params, (2, 2, 2))
  sharded = mesh_sampling.sample(CFG, placed, tokens, mask, key, sp, num_samples=4,
                                 layout=layout)
  np.testing.assert_array_equal(sharded.out.tokens_bt, single.out.tokens_bt)
  np.testing.assert_array_equal(sharded.out.length_b, single.out.length_b)
  np.testing.assert_allclose(sharded.out.logp_bt, single.out.logp_bt, atol=1e-5)
  np.testing.assert_array_equal(sharded.rows, np.arange(16))   # one process owns every row


@pytest.mark.integration  # compiles its own model programs: ~6 s on 2 cores
def test_decode_state_rows_are_split_over_the_batch_axes(params):
  """Each device holds 16 / (data * fsdp) rows of the KV cache and of the outputs."""
  tokens, mask = rollout.left_pad([[5, 6, 7], [8, 9], [3], [4, 4]], pad_id=0, bucket=8)
  placed, layout = _placed(params, (4, 2, 1))
  put = lambda x: distributed.put(np.asarray(x), layout.sharding(("batch", None), x.shape))
  out = sampler.sample(CFG, placed, put(tokens), put(mask),
                       distributed.put(jax.random.key(0), sharding.replicated(layout.mesh)),
                       rollout.SamplingParams(max_new_tokens=6), num_samples=4, layout=layout)
  shard_rows = {s.data.shape[0] for s in out.tokens_bt.addressable_shards}
  assert shard_rows == {2} and len(out.tokens_bt.sharding.device_set) == 8


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_resharded_params_decode_without_per_token_fsdp_collectives():
  """On an fsdp mesh, training-layout weights cost all-reduces at every decoded token;
  `rollout.reshard_params` gathers them once, leaving only the loop's "all done?" test."""
  from concise_jax import compiled_cost  # pylint: disable=import-outside-toplevel
  from configs import grpo_lambda  # pylint: disable=import-outside-toplevel
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.rollout.prompts_per_step = 8          # prompt rows divide the 8-way fsdp axis
  mesh = sharding.make_mesh((1, 8, 1))
  per_token = lambda reshard: compiled_cost.collective_counts(
      compiled_cost.compile_sampler(config, mesh, reshard).as_text())["all-reduce"].get(
          "per_token", 0)
  training, gathered = per_token(False), per_token(True)
  assert training > 2 and gathered <= 1, (training, gathered)


@pytest.mark.integration     # two speculative samplers per case: minutes of compile here
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sharded_speculative_sampler_equals_one_device(params, temperature):
  """The lossless speculative sampler on a (2, 2, 2) mesh: rows split over data × fsdp, the
  same tokens and log-probs as on one device for the same key (a noisy model drafter gives
  ragged acceptance, so per-row cache offsets differ across devices)."""
  from concise_jax.draft import ModelDrafter, testing  # pylint: disable=import-outside-toplevel
  from concise_jax.rollout import speculative  # pylint: disable=import-outside-toplevel
  tokens, mask = rollout.left_pad([[5, 6, 7], [8, 9, 10, 11, 12], [3], [4, 4]], pad_id=0,
                                  bucket=8)
  sp = rollout.SamplingParams(max_new_tokens=8, temperature=temperature, eos_ids=(2,))
  drafter, dp = ModelDrafter(CFG), {"params": testing.noisy_copy(params, 1, 0.1)}
  key = jax.random.key(5)
  single = speculative.sample(CFG, params, drafter, dp, tokens, mask, key, sp,
                              speculative.SpecParams(num_draft=3), num_samples=2)
  placed, layout = _placed(params, (2, 2, 2))
  put = lambda x: distributed.put(np.asarray(x), layout.sharding(("batch", None), x.shape))
  rep = sharding.replicated(layout.mesh)
  sharded = speculative.sample(CFG, placed, drafter, distributed.put(dp, rep), put(tokens),
                               put(mask), distributed.put(key, rep), sp,
                               speculative.SpecParams(num_draft=3), num_samples=2,
                               layout=layout)
  assert len(sharded.tokens_bt.sharding.device_set) == 8
  assert {s.data.shape[0] for s in sharded.tokens_bt.addressable_shards} == {2}
  np.testing.assert_array_equal(sharded.tokens_bt, single.tokens_bt)
  np.testing.assert_array_equal(sharded.length_b, single.length_b)
  np.testing.assert_allclose(sharded.logp_bt, single.logp_bt, atol=1e-5)
