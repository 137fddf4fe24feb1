"""Config sections built from the registered components' signatures, typed, then pruned.

A registry-backed section (`config.reward`, `config.loss`, ...) holds `name` (the selected
variant), a few section-wide keys (`loss.entropy_coef`, `kl.coef`, ...) and one sub-dict per
registered variant, filled from that component's `options` (its keyword-only defaults and
annotations: the one place an option is defined). Every variant is present while flags are
parsed, so `--config.reward.name=dler --config.reward.dler.max_len=100` works; `resolve` then
drops the unselected variants, so a run's config.json holds only the options it uses.

Values are typed from the annotation: an `int | None = None` option is an int placeholder, so
`--config.reward.dler.max_len=abc` fails at flag parsing, and `errors` re-checks every
selected option's type (a config built in Python can bypass the placeholder).

Imports only the component packages (pure jnp) and the registry: no model, sampler or data.
"""
import ast
import copy
import types
import typing

import ml_collections
from ml_collections import config_dict

from concise_jax import advantages, budgets, filters, losses, rewards
from concise_jax.registry import Option, Registry

# config.<section>.name → the registry it names; config.<section>.<name> holds its options.
SECTIONS: dict[str, Registry] = {
    "reward": rewards.REWARDS,
    "advantage": advantages.ADVANTAGES,
    "filter": filters.GROUP_FILTERS,
    "loss": losses.POLICY_LOSSES,
    "aggregation": losses.AGGREGATIONS,
    "kl": losses.KL_ESTIMATORS,
    "budget": budgets.BUDGET_SCHEDULES,
}


def component_options(section: str, name: str) -> dict[str, Option]:
  """The options of variant `name` of `section`, in signature order."""
  return SECTIONS[section].component(name).options


def _field(option: Option):
  """A config value of the option's type: None defaults become typed placeholders."""
  base = option.base_type
  if option.default is None:
    return config_dict.placeholder(base if base in (int, float, str, bool) else object)
  if base is float and isinstance(option.default, int) and not isinstance(option.default, bool):
    return float(option.default)   # `x: float = 1` must still accept 0.5
  return option.default


def section_config(section: str) -> ml_collections.ConfigDict:
  """One sub-dict per registered variant of `section`, each holding its typed defaults."""
  registry = SECTIONS[section]
  return ml_collections.ConfigDict({
      name: {k: _field(o) for k, o in component_options(section, name).items()}
      for name in registry.names()})


def defaults(section: str) -> dict[str, dict]:
  """{variant: {option: default}} of `section`, read from the signatures (a view, for callers
  that bind a variant's defaults by hand, e.g. tests)."""
  return {name: {k: o.default for k, o in component_options(section, name).items()}
          for name in SECTIONS[section].names()}


# --------------------------------------------------------------------------- types

def _type_name(option: Option) -> str:
  base = option.base_type
  if typing.get_origin(base) is typing.Literal:
    name = "one of " + ", ".join(repr(a) for a in typing.get_args(base))
  else:
    name = getattr(base, "__name__", str(base)) if typing.get_origin(base) is None else str(base)
  return f"{name} or None" if option.optional else name


def _is_instance(value, annotation) -> bool:
  """`value` fits `annotation` (int, float | None, tuple[float, ...], str, bool, Literal)."""
  origin, args = typing.get_origin(annotation), typing.get_args(annotation)
  if origin in (typing.Union, types.UnionType):
    return any(_is_instance(value, a) for a in args)
  if annotation is type(None):
    return value is None
  if annotation is typing.Any:
    return True
  if origin is typing.Literal:                  # a fixed set of values: `mode: Literal[...]`
    return value in args
  if origin in (tuple, list):
    if not isinstance(value, (tuple, list)):
      return False
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_is_instance(v, args[0]) for v in value)
    return not args or (len(args) == len(value)
                        and all(_is_instance(v, a) for v, a in zip(value, args)))
  if annotation is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if annotation is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(annotation, type):
    return isinstance(value, annotation)
  return True


def option_error(section: str, variant: str, key: str, value) -> str | None:
  """Why `config.<section>.<variant>.<key> = value` is not a valid option, or None."""
  options = component_options(section, variant)
  if key not in options:
    return (f"config.{section}.{variant}.{key}: unknown option of {SECTIONS[section].kind} "
            f"{variant!r}; valid options: {', '.join(options) or '(none)'}")
  option = options[key]
  if not _is_instance(value, option.type):
    return f"config.{section}.{variant}.{key}={value!r}: must be {_type_name(option)}"
  return None


def errors(config: ml_collections.ConfigDict) -> list[str]:
  """Unknown or ill-typed options of every variant present in `config` (after `resolve`:
  the selected ones), and variants the registry does not have."""
  out = []
  for section, registry in SECTIONS.items():
    if section not in config:
      continue
    for variant, value in config[section].items():
      if not isinstance(value, ml_collections.ConfigDict):
        continue
      if variant not in registry:
        out.append(f"config.{section}.{variant}: no {registry.kind} of that name; valid "
                   f"choices: {', '.join(registry.names())}")
        continue
      for key, v in value.items():
        problem = option_error(section, variant, key, v)
        if problem:
          out.append(problem)
  return out


def override_error(config: ml_collections.ConfigDict, dotted: str, text: str) -> str | None:
  """Why the flag `--config.<dotted>=<text>` cannot set a component option, or None.

  The flag parser reports an ill-typed value with a traceback; this names the key, the
  expected type and the value.
  """
  parts = dotted.split(".")
  if len(parts) != 3 or parts[0] not in SECTIONS or parts[1] not in SECTIONS[parts[0]]:
    return None
  section, variant, key = parts
  options = component_options(section, variant)
  if key not in options:
    return option_error(section, variant, key, None)
  option = options[key]
  value = _parse(text, option)
  if value is _UNPARSABLE or not _is_instance(value, option.type):
    return f"config.{dotted}={text!r}: must be {_type_name(option)}"
  return None


_UNPARSABLE = object()


def _parse(text: str, option: Option):
  """The flag text as a value of the option's type (None and tuples as Python literals)."""
  if text == "None" and option.optional:
    return None
  base = option.base_type
  if base is str or (typing.get_origin(base) is typing.Literal
                     and all(isinstance(a, str) for a in typing.get_args(base))):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if base is bool and text.lower() in ("true", "false"):
      return text.lower() == "true"
    return _UNPARSABLE
  return value


# --------------------------------------------------------------------------- pruning

def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` holding only the selected variant of each section.

  Call after flags are parsed and the config validated, before anything is written: the run
  (and its config.json) then carries the options it uses, not every variant's. Idempotent.
  """
  out = copy.deepcopy(config)
  locked = out.is_locked
  out.unlock()
  for section, registry in SECTIONS.items():
    if section not in out:
      continue
    selected = out[section].name
    for variant in [k for k in out[section].keys() if k in registry and k != selected]:
      del out[section][variant]
  if locked:
    out.lock()
  return out


def resolve_dict(config: dict) -> dict:
  """`resolve` for a config read back as a plain dict (a checkpoint's or config.json): a run
  saved before pruning compares with a pruned one on its selected options only."""
  out = dict(config)
  for section, registry in SECTIONS.items():
    if isinstance(out.get(section), dict):
      selected = out[section].get("name")
      out[section] = {k: v for k, v in out[section].items()
                      if k not in registry or k == selected}
  return out


def count_leaves(tree) -> int:
  """Leaf keys of a nested dict (the size of a config.json)."""
  if isinstance(tree, (dict, ml_collections.ConfigDict)):
    return sum(count_leaves(v) for v in tree.values())
  return 1
