"""The memory arithmetic against hand-computed cases and the real parameter layout; the
integration case checks it against `compiled.memory_analysis()` on five 8-device meshes."""
import jax
import pytest

from concise_jax import compiled_cost, cost_model as cm, models
from concise_jax.models import tiny
from concise_jax.train import lora


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out


@pytest.mark.parametrize("overrides", [{}, {"qkv_bias": True, "tie_embeddings": False}])
def test_param_table_is_the_model_layout(overrides):
  cfg = tiny.tiny_config(**overrides)
  shapes = _flat(jax.eval_shape(lambda: models.init_params(cfg, jax.random.key(0))))
  axes = _flat(models.param_axes(cfg))
  table = cm.param_table(cfg)
  assert set(table) == set(shapes)
  for name, (shape, names) in table.items():
    assert shape == shapes[name].shape and names == axes[name], name


def test_lora_table_is_the_adapter_layout():
  cfg = tiny.tiny_config()
  params = jax.eval_shape(lambda: models.init_params(cfg, jax.random.key(0)))
  targets = tuple(lora.TARGETS)
  assert targets == tuple(cm.LORA_TARGETS)
  shapes = _flat(jax.eval_shape(lambda p: lora.init_lora(p, jax.random.key(1), rank=4,
                                                         targets=targets), params))
  axes = _flat(lora.lora_axes(models.param_axes(cfg), targets))
  table = cm.lora_table(cfg, 4, targets)
  assert set(table) == set(shapes)
  for name, (shape, names) in table.items():
    assert shape == shapes[name].shape and names == axes[name], name


def test_parameter_counts_match_the_published_models():
  assert cm.param_count(cm.PRESETS["smollm2-135m"]) == 134_515_008
  assert cm.param_count(cm.QWEN2P5_1P5B) == 1_543_714_304
  assert cm.param_count(cm.QWEN2P5_7B) == 7_615_616_512
  assert cm.param_count(cm.QWEN2P5_32B) == 32_763_876_352


def test_kv_cache_splits_rows_over_data_fsdp_and_kv_heads_over_tensor_where_they_divide():
  run = cm.RunShape(prompts=32, samples=16, prompt_len=1024, max_new_tokens=8192,
                    compute_dtype="bfloat16")
  per_row_head = 2 * 28 * 9216 * 128 * 2          # k and v, 28 layers, Q slots, H, bf16
  # 7B, K=4: 512 rows / 64 = 8 rows × 4 heads; (4,4,4): 32 rows × 4 / 4 heads.
  assert cm.kv_cache_bytes(cm.QWEN2P5_7B, run, cm.MeshShape(8, 8, 1)) == 8 * 4 * per_row_head
  assert cm.kv_cache_bytes(cm.QWEN2P5_7B, run, cm.MeshShape(4, 4, 4)) == 32 * 1 * per_row_head
  # 1.5B has K=2: tensor=4 does not divide it, so every tensor device keeps both heads.
  assert cm.kv_cache_bytes(cm.QWEN2P5_1P5B, run, cm.MeshShape(4, 4, 4)) == 32 * 2 * per_row_head


def test_rows_replicate_over_axes_that_do_not_divide_them():
  run = cm.RunShape(prompts=3, samples=4, prompt_len=8, max_new_tokens=8)   # 12 rows
  assert cm.rows_per_device(run, cm.MeshShape(8, 1, 1)) == 12                # 8 ∤ 12
  assert cm.rows_per_device(run, cm.MeshShape(4, 8, 1)) == 3                 # fsdp dropped
  assert cm.rows_per_device(run, cm.MeshShape(2, 2, 2)) == 3
  # SmolLM2's 3 KV heads do not split over tensor=2 (the rule sharding.py documents).
  assert cm.shard_divisors((30, 576, 3, 64), ("layers", "embed", "kv_heads", "head_dim"),
                           cm.MeshShape(1, 8, 2)) == (1, 8, 1, 1)


def test_dcn_slices_multiply_the_data_axis_and_never_split_params():
  run = cm.RunShape(prompts=32, samples=16, prompt_len=64, max_new_tokens=64)
  one, two = cm.MeshShape(2, 8, 4), cm.MeshShape(2, 8, 4, dcn_data=2)
  assert two.devices == 2 * one.devices and two.axis_sizes["data"] == 4
  m1, m2 = (cm.step_memory(cm.QWEN2P5_7B, m, run) for m in (one, two))
  assert m1["params"] == m2["params"] and m1["optimizer"] == m2["optimizer"]
  assert m1["decode_rows"] == 2 * m2["decode_rows"] == 32


def test_full_finetuning_state_is_16_bytes_per_param_on_one_device():
  run = cm.RunShape(prompts=1, samples=1, prompt_len=8, max_new_tokens=8, reward_table=0)
  mem = cm.step_memory(cm.QWEN2P5_1P5B, cm.MeshShape(), run)
  n = cm.param_count(cm.QWEN2P5_1P5B)
  assert mem["params"] == mem["frozen_ref"] == 4 * n     # f32 weights and the KL reference
  assert mem["optimizer"] == 8 * n                        # two f32 Adam moments
  assert mem["resident"] == 16 * n


_HLO = """HloModule toy

%add (x: f32[], y: f32[]) -> f32[] {
  %x = f32[] parameter(0)
  ROOT %s = f32[] add(%x, %x)
}

%scan_body (p: (s32[], f32[4])) -> (s32[], f32[4]) {
  %ar = f32[4]{0} all-reduce(%v), channel_id=1, to_apply=%add
}

%decode_body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %ag = f32[8]{0} all-gather(%w), channel_id=2, dimensions={0}
  %inner = (s32[], f32[4]) while(%t), condition=%cond, body=%scan_body, backend_config={"known_trip_count":{"n":"2"}}
}

%cond (p: (s32[], f32[4])) -> pred[] {
  ROOT %c = pred[] constant(true)
}

ENTRY %main (a: f32[4]) -> f32[4] {
  %cp = bf16[2,3]{1,0} collective-permute(%a), channel_id=3, source_target_pairs={{0,1}}
  %scan = (s32[], f32[4]) while(%t0), condition=%cond, body=%scan_body, backend_config={"known_trip_count":{"n":"3"}}
  %decode = (s32[], f32[8]) while(%t1), condition=%cond, body=%decode_body
}
"""


def test_collective_counts_weight_ops_by_loop_trip_counts():
  counts = compiled_cost.collective_counts(_HLO)
  # The scan's all-reduce: 3 per call; inside the decode loop it runs 2 per token.
  assert counts["all-reduce"] == {"ops": 2, "per_call": 3, "bytes_per_call": 48,
                                  "per_token": 2, "bytes_per_token": 32}
  assert counts["all-gather"] == {"ops": 1, "per_token": 1, "bytes_per_token": 32}
  assert counts["collective-permute"] == {"ops": 1, "per_call": 1, "bytes_per_call": 12}
  assert counts["reduce-scatter"] == {} and counts["all-to-all"] == {}


CHECK_MESHES = ((8, 1, 1), (1, 8, 1), (1, 1, 8), (2, 2, 2), (4, 2, 1))


@pytest.mark.integration
@pytest.mark.parametrize("mesh_shape", CHECK_MESHES)
def test_predicted_bytes_match_memory_analysis(mesh_shape):
  """Arguments are exact layouts, so the arithmetic must land within 10%: the update's state,
  frozen reference and batch; the sampler's params and prompts; the KV cache the prefill hands
  the decode loop. Temp bytes are reported by experiments/cost_model.py, not asserted."""
  from experiments import cost_model as script  # pylint: disable=import-outside-toplevel
  result = compiled_cost.check_mesh(script.check_config("grpo_lambda"), mesh_shape,
                                    collectives=False)
  pred = result["predicted_args"]
  for compiled, predicted in ((result["update"]["argument"], pred["update_args"]),
                              (result["sampler"]["argument"], pred["sampler_args"]),
                              (result["prefill"]["output"], pred["prefill_out"])):
    assert 0.9 <= compiled / predicted <= 1.1, (mesh_shape, compiled, predicted)
