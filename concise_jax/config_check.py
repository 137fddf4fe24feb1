"""Launch-time config checks: every name against its registry, every override against the keys.

`main.py` runs these before the workdir exists, so a typo costs a one-line error naming the
bad key or name and the valid choices, not a half-written run directory. Validation always
reads the registries themselves (never a hand-written list of allowed names).
"""
import pathlib
from collections.abc import Sequence

import ml_collections

from concise_jax import advantages, budgets, data, filters, losses, rewards
from concise_jax.models import loading
from concise_jax.registry import Registry
from concise_jax.train import lora, optim

# config.<section>.name → the registry it must name; config.<section>.<name> holds its kwargs.
NAMED_SECTIONS: dict[str, Registry] = {
    "reward": rewards.REWARDS,
    "advantage": advantages.ADVANTAGES,
    "filter": filters.GROUP_FILTERS,
    "loss": losses.POLICY_LOSSES,
    "aggregation": losses.AGGREGATIONS,
    "kl": losses.KL_ESTIMATORS,
    "budget": budgets.BUDGET_SCHEDULES,
}


def _registry_errors(config) -> list[str]:
  errors = []
  for section, registry in NAMED_SECTIONS.items():
    name = config[section].name
    if name not in registry:
      errors.append(f"config.{section}.name: unknown {registry.kind} {name!r}; valid choices: "
                    f"{', '.join(registry.names())}")
    elif name not in config[section]:
      errors.append(f"config.{section}.{name}: missing kwargs sub-dict (add it to the defaults "
                    "table in configs/common.py)")
  if config.optim.schedule not in optim.SCHEDULES:
    errors.append(f"config.optim.schedule: unknown lr schedule {config.optim.schedule!r}; "
                  f"valid choices: {', '.join(optim.SCHEDULES.names())}")
  return errors


def _model_errors(config) -> list[str]:
  errors = []
  name = config.model.name
  if name != "tiny" and name not in loading.KNOWN_MODELS and not pathlib.Path(name).exists():
    errors.append(f"config.model.name: unknown model {name!r} (not an existing path); valid "
                  f"choices: {', '.join(['tiny', *sorted(loading.KNOWN_MODELS)])}")
  if config.model.lora.rank > 0:
    try:
      lora.parse_targets(config.model.lora.targets)
    except ValueError as e:
      errors.append(f"config.model.lora.targets: {e}")
  return errors


def _data_errors(config) -> list[str]:
  kind, sep, target = config.data.dataset.partition(":")
  kinds = data.sources.dataset_kinds()
  if not sep or kind not in kinds:
    return [f"config.data.dataset: {config.data.dataset!r} must be 'kind:name_or_path' with "
            f"kind one of: {', '.join(kinds)}"]
  if kind == "task" and target not in data.TASKS:
    return [f"config.data.dataset: unknown task {target!r}; valid choices: "
            f"{', '.join(data.TASKS.names())}"]
  return []


def _shape_errors(config) -> list[str]:
  """Batch arithmetic that would otherwise fail only after the first rollout."""
  errors = []
  rows = config.rollout.prompts_per_step * config.rollout.group_size
  mb = config.optim.num_minibatches
  if mb < 1 or rows % mb:
    errors.append(f"config.optim.num_minibatches={mb} must divide the batch of "
                  f"{rows} rows (prompts_per_step × group_size)")
  elif 0 < config.optim.micro_batch < rows // mb and (rows // mb) % config.optim.micro_batch:
    errors.append(f"config.optim.micro_batch={config.optim.micro_batch} must divide the "
                  f"minibatch of {rows // mb} rows")
  if config.train.ppo_epochs < 1:
    errors.append("config.train.ppo_epochs must be >= 1")
  if len(config.mesh.shape) != 3:
    errors.append(f"config.mesh.shape {tuple(config.mesh.shape)} needs 3 entries "
                  "(data, fsdp, tensor)")
  if len(config.mesh.dcn_shape) != 3 or min(config.mesh.dcn_shape) < 1:
    errors.append(f"config.mesh.dcn_shape {tuple(config.mesh.dcn_shape)} needs 3 positive "
                  "entries (data, fsdp, tensor across slices)")
  for key in ("dtype", "param_dtype"):
    if config.model[key] not in ("float32", "bfloat16", "float16"):
      errors.append(f"config.model.{key}={config.model[key]!r}; valid choices: bfloat16, "
                    "float16, float32")
  return errors


def validate(config: ml_collections.ConfigDict) -> list[str]:
  """All problems found in `config` (empty when it can launch)."""
  return (_registry_errors(config) + _model_errors(config) + _data_errors(config)
          + _shape_errors(config))


def unknown_override(config: ml_collections.ConfigDict, dotted: str) -> str | None:
  """Why `--config.<dotted>=...` cannot apply to `config`, or None if the key exists.

  ml_collections rejects unknown keys with a traceback and at most one suggestion; this names
  the key and lists every valid key at the level where it went wrong.
  """
  node, path = config, []
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = "config" + "".join(f".{p}" for p in path)
      valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      return (f"unknown config key {'config.' + dotted!r}: {where} has no key {part!r}; "
              f"valid choices: {', '.join(valid) or '(none: it is a value, not a section)'}")
    node, path = node[part], path + [part]
  return None


def override_keys(argv: Sequence[str], flag: str = "config") -> list[str]:
  """Dotted keys of `--config.a.b=v` / `--config.a.b v` overrides in a command line."""
  keys = []
  for arg in argv:
    if arg.startswith(f"--{flag}."):
      keys.append(arg[len(flag) + 3:].split("=", 1)[0])
  return keys
