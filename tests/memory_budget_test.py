"""The remat policy chosen from a memory budget: fake peaks for the logic, the tiny model's
compiled update for the wiring."""
import pytest

from concise_jax.train import memory_budget as mb

GIB = mb.GIB
# experiments/bench_remat.py's measured peaks (GiB) on the quickstart model.
PEAKS = {"none": 1.83 * GIB, "dots": 0.73 * GIB, "full": 0.26 * GIB}


def _choose(budget_gib):
  tried = []

  def measure(policy):
    tried.append(policy)
    return PEAKS[policy]
  chosen, trials = mb.choose_remat(budget_gib * GIB, measure,
                                   lambda p: None if p == "dots" else int(PEAKS[p] * 1.1))
  assert [t.policy for t in trials] == tried
  return chosen, trials


def test_a_budget_between_the_dots_and_none_peaks_picks_dots():
  chosen, trials = _choose(1.0)
  assert chosen == "dots"
  assert [t.policy for t in trials] == ["none", "dots"]     # full is never compiled
  assert trials[0].measured_bytes == int(1.83 * GIB)
  line = mb.report_line(1.0 * GIB, chosen, trials)
  assert line == ("memory budget 1 GiB per device: model.remat=dots (none: predicted 2.01G, "
                  "measured 1.83G; dots: predicted -, measured 0.73G)")


def test_a_large_budget_keeps_no_remat_and_a_tiny_one_picks_full():
  assert _choose(2.0)[0] == "none"
  chosen, trials = _choose(0.3)
  assert chosen == "full" and len(trials) == 3


def test_a_budget_nothing_fits_is_a_clear_error():
  with pytest.raises(mb.MemoryBudgetError, match=r"memory_budget_gb=0.1: no remat policy "
                     r"fits \(none: .*measured 1.83G; dots: .*; full: .*measured 0.26G\)"):
    _choose(0.1)


def test_peak_counts_donated_outputs_once():
  assert mb.peak_bytes({"argument": 100, "output": 90, "alias": 80, "temp": 40}) == 150


def test_zero_budget_leaves_the_config_alone():
  from configs import grpo  # pylint: disable=import-outside-toplevel
  config = grpo.get_config("model=tiny,runlocal")
  assert config.train.memory_budget_gb == 0.0
  out = mb.apply(config, "model_cfg", None, {}, None, None, log=pytest.fail)
  assert out == (config, "model_cfg")


@pytest.mark.integration   # compiles the tiny update up to three times
def test_the_tiny_models_budget_picks_from_its_compiled_peaks():
  from concise_jax import sharding  # pylint: disable=import-outside-toplevel
  from concise_jax.train import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  from configs import grpo  # pylint: disable=import-outside-toplevel
  config = grpo.get_config("model=tiny,runlocal")
  model_cfg, params, _ = trainer_lib.load_model(config)
  trainable, frozen, axes = trainer_lib.split_trainable(config, model_cfg, params)
  mesh = sharding.make_mesh(config.mesh.shape)
  peak = {p: mb.compiled_update_peak(config, model_cfg, trainable, frozen, axes, mesh, p)
          for p in ("none", "full")}
  assert peak["full"] < peak["none"]
  config.train.memory_budget_gb = (peak["none"] - 1) / GIB
  lines = []
  config, model_cfg = mb.apply(config, model_cfg, trainable, frozen, axes, mesh,
                               log=lines.append)
  assert config.model.remat == model_cfg.remat != "none"
  assert lines[0].startswith("memory budget ") and "none: predicted " in lines[0]
