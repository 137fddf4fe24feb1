"""Logical-axis rules → PartitionSpecs and meshes (no compilation)."""
import jax
import pytest
from jax.sharding import PartitionSpec as P

from concise_jax import models, sharding
from concise_jax.models import tiny


def test_logical_to_spec_follows_the_rules_and_never_reuses_a_mesh_axis():
  rules = sharding.DEFAULT_RULES
  assert sharding.logical_to_spec(("layers", "embed", "heads", "head_dim"), rules) == P(
      None, "fsdp", "tensor", None)
  assert sharding.logical_to_spec(("batch", "length"), rules) == P(("data", "fsdp"), None)
  assert sharding.logical_to_spec(("batch", "embed"), rules) == P(("data", "fsdp"), None)
  assert sharding.logical_to_spec(("vocab", "unknown_name"), rules) == P("tensor", None)


def test_make_mesh_fills_minus_one_and_takes_a_device_prefix():
  mesh = sharding.make_mesh((1, -1, 1))
  assert mesh.axis_names == sharding.MESH_AXES
  assert mesh.shape["fsdp"] == jax.device_count()
  assert sharding.make_mesh((1, 1, 1)).devices.size == 1
  with pytest.raises(ValueError, match="devices"):
    sharding.make_mesh((jax.device_count() + 1, 1, 1))


def test_param_shardings_cover_every_param_with_the_rules():
  cfg = tiny.tiny_config()
  mesh = sharding.make_mesh((1, 1, 1))
  shardings = sharding.tree_shardings(mesh, models.param_axes(cfg), sharding.DEFAULT_RULES)
  assert shardings["layers"]["w_q"].spec == P(None, "fsdp", "tensor", None)
  assert shardings["embed"].spec == P("tensor", "fsdp")
  assert (jax.tree.structure(shardings)
          == jax.tree.structure(jax.eval_shape(lambda k: models.init_params(cfg, k),
                                               jax.random.PRNGKey(0))))


def test_dims_a_mesh_axis_does_not_divide_are_replicated():
  mesh = sharding.make_mesh((1, 2, 2))
  rules = sharding.DEFAULT_RULES
  # SmolLM2's w_k [L, D=576, K=3, H=64]: 3 KV heads cannot split over tensor=2.
  spec = sharding.logical_to_spec(("layers", "embed", "kv_heads", "head_dim"), rules,
                                  shape=(30, 576, 3, 64), mesh=mesh)
  assert spec == P(None, "fsdp", None, None)
  # batch → (data, fsdp): 6 rows split over data=1 × fsdp=2; 5 rows keep only data (size 1).
  assert sharding.logical_to_spec(("batch",), rules, shape=(6,), mesh=mesh) == P(
      ("data", "fsdp"))
  assert sharding.logical_to_spec(("batch",), rules, shape=(5,), mesh=mesh) == P("data")


def test_make_mesh_is_topology_aware_and_checks_the_dcn_factor():
  mesh = sharding.make_mesh((2, 2, 2))
  assert mesh.shape == {"data": 2, "fsdp": 2, "tensor": 2}
  assert sorted(d.id for d in mesh.devices.flat) == list(range(8))
  with pytest.raises(ValueError, match="dcn_shape"):
    sharding.make_mesh((1, 1, 1), dcn_shape=(0, 1, 1))
  # One process is one granule: a 2-slice DCN factor needs two processes (or TPU slices).
  with pytest.raises(ValueError):
    sharding.make_mesh((-1, 1, 1), dcn_shape=(2, 1, 1))


def test_layout_is_hashable_and_constrains_by_logical_names():
  layout = sharding.Layout.of(sharding.make_mesh((4, 2, 1)), [["batch", ["data", "fsdp"]]])
  assert hash(layout) == hash(sharding.Layout.of(layout.mesh, (("batch", ("data", "fsdp")),)))
  assert layout.sharding(("batch", None), (16, 3)).spec == jax.sharding.PartitionSpec(
      ("data", "fsdp"), None)
  # 6 rows: data=4 does not divide them, so the dim replicates rather than failing.
  assert layout.sharding(("batch",), (6,)).spec == jax.sharding.PartitionSpec(None)
