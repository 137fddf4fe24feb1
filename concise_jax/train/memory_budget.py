"""The remat policy from a memory budget (`train.memory_budget_gb`), not by hand.

Remat trades compute for memory: "none" keeps every layer's forward values for the backward,
"dots" keeps the weight matmuls' outputs, "full" recomputes each layer (a second forward,
~25% of an update). `choose_remat` tries them cheapest first and keeps the first whose
compiled update fits: XLA's `memory_analysis()` of the real program, not an estimate, so the
choice holds whatever the batch, mesh and options do to the activations. The cost model's
prediction is printed next to it as a check on the arithmetic.

    config, model_cfg = memory_budget.apply(config, model_cfg, trainable, frozen, axes, mesh)
"""
import copy
import dataclasses
from collections.abc import Callable, Sequence

import jax

from concise_jax.cost_model import fmt_bytes
from concise_jax.models.config import REMAT_POLICIES

GIB = 1024 ** 3


class MemoryBudgetError(ValueError):
  """Not even the most frugal remat policy fits the budget."""


@dataclasses.dataclass(frozen=True)
class Trial:
  """One policy tried: the cost model's per-device peak (None: it has no figure for the
  policy) and the compiled update's."""
  policy: str
  predicted_bytes: int | None
  measured_bytes: int


def peak_bytes(stats: dict[str, int]) -> int:
  """Per-device peak of a compiled program from `compiled_cost.memory_stats`: arguments +
  temporaries + outputs, less outputs aliasing donated arguments (the new state reuses the
  old state's buffers, so it is not counted twice)."""
  return stats["argument"] + stats["temp"] + stats["output"] - stats["alias"]


def choose_remat(budget_bytes: float, measure: Callable[[str], int],
                 predict: Callable[[str], int | None] = lambda policy: None,
                 policies: Sequence[str] = REMAT_POLICIES) -> tuple[str, list[Trial]]:
  """(first policy whose measured peak fits `budget_bytes`, every trial up to it).

  `policies` are ordered cheapest compute first; later ones are not compiled once one fits.
  Raises MemoryBudgetError (with the trials' figures) when none fits.
  """
  trials = []
  for policy in policies:
    trials.append(Trial(policy, predict(policy), int(measure(policy))))
    if trials[-1].measured_bytes <= budget_bytes:
      return policy, trials
  raise MemoryBudgetError(
      f"train.memory_budget_gb={budget_bytes / GIB:g}: no remat policy fits "
      f"({_trials_text(trials)}); raise the budget, shard wider or shrink optim.micro_batch")


def _bytes(n: int | None) -> str:
  return "-" if n is None else fmt_bytes(n)


def _trials_text(trials: Sequence[Trial]) -> str:
  return "; ".join(f"{t.policy}: predicted {_bytes(t.predicted_bytes)}, measured "
                   f"{_bytes(t.measured_bytes)}" for t in trials)


def report_line(budget_bytes: float, chosen: str, trials: Sequence[Trial]) -> str:
  """The start-up line: budget, chosen policy, and each tried policy's predicted and measured
  per-device update peak."""
  return (f"memory budget {budget_bytes / GIB:g} GiB per device: model.remat={chosen} "
          f"({_trials_text(trials)})")


# --------------------------------------------------------------------------- the run's figures


def _with_remat(config, model_cfg, policy: str):
  config = copy.deepcopy(config)
  config.model.remat = policy
  return config, model_cfg.replace(remat=policy)


def compiled_update_peak(config, model_cfg, trainable, frozen: dict, trainable_axes,
                         mesh: jax.sharding.Mesh, policy: str) -> int:
  """Per-device peak bytes of the run's update compiled with remat `policy` (abstract inputs:
  nothing runs). The jitted update is memoised by the trainer, so the chosen policy's build
  is reused; its executable compiles again on the first step."""
  # pylint: disable=import-outside-toplevel  # the trainer imports this module
  from concise_jax import compiled_cost
  from concise_jax.train import trainer as trainer_lib
  from concise_jax.train.state import init_train_state
  config, model_cfg = _with_remat(config, model_cfg, policy)
  update, tx, _, _ = trainer_lib._build_update(  # pylint: disable=protected-access
      config, model_cfg, trainable, frozen, trainable_axes, mesh)
  state = jax.eval_shape(lambda p: init_train_state(p, tx), trainable)
  frozen = jax.eval_shape(lambda f: f, frozen)
  batch = compiled_cost.abstract_update_batch(compiled_cost.run_shape_of(config, model_cfg))
  return peak_bytes(compiled_cost.memory_stats(update.lower(state, frozen, batch).compile()))


def predicted_update_peak(config, model_cfg, policy: str) -> int | None:
  """`cost_model.step_memory`'s update peak; it models only no remat and full remat."""
  # pylint: disable=import-outside-toplevel
  from concise_jax import compiled_cost, cost_model
  if policy == "dots":
    return None
  config, model_cfg = _with_remat(config, model_cfg, policy)
  mesh = cost_model.MeshShape(*config.mesh.shape)
  run = compiled_cost.run_shape_of(config, model_cfg)
  return int(cost_model.step_memory(model_cfg, mesh, run, tuple(config.mesh.rules))
             ["update_peak"])


def apply(config, model_cfg, trainable, frozen: dict, trainable_axes, mesh: jax.sharding.Mesh,
          log: Callable[[str], None] = print):
  """(config, model config) with `model.remat` chosen from `train.memory_budget_gb` (> 0);
  logs the start-up line. A budget of 0 returns both unchanged."""
  budget_gb = float(config.train.get("memory_budget_gb", 0.0))
  if budget_gb <= 0:
    return config, model_cfg
  budget = budget_gb * GIB
  measure = lambda policy: compiled_update_peak(config, model_cfg, trainable, frozen,
                                                trainable_axes, mesh, policy)
  predict = lambda policy: predicted_update_peak(config, model_cfg, policy)
  chosen, trials = choose_remat(budget, measure, predict)
  log(report_line(budget, chosen, trials))
  return _with_remat(config, model_cfg, chosen)
