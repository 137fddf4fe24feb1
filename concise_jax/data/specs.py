"""Dataset specs: one string names where prompts come from, for training and evaluation alike.

    task:add_1digit                          a built-in generator
    task:arithmetic?difficulty=1-5&unique=true   with task options after `?`
    gsm8k:/data/gsm8k_test.jsonl             a local file of a registered format

The query uses no commas, so several specs fit one comma-separated flag.
"""
import dataclasses
from typing import Any

from concise_jax.data import generators
from concise_jax.data import jsonl


def dataset_kinds() -> list[str]:
  """Valid spec prefixes: `task` and every registered file format."""
  return ["task"] + jsonl.FORMATS.names()


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """A parsed spec: `kind` ("task" or a file format), `target` (task name or path), and the
  task options of its query."""
  kind: str
  target: str
  options: dict[str, Any]

  @property
  def base(self) -> str:
    """The spec without its query: `task:arithmetic`."""
    return f"{self.kind}:{self.target}"


def _parse_value(text: str):
  """`3` → 3, `1-4` → [1, 2, 3, 4], `true` → True; anything else stays a string."""
  if text.lower() in ("true", "false"):
    return text.lower() == "true"
  if text.lstrip("-").isdigit():
    return int(text)
  lo, sep, hi = text.partition("-")
  if sep and lo.isdigit() and hi.isdigit():
    return list(range(int(lo), int(hi) + 1))
  return text


def task_options(name: str) -> list[str]:
  """The options a task accepts in a spec query (its keyword-only parameters)."""
  return list(generators.TASKS.component(name).options)


def parse_data_spec(spec: str) -> DataSpec:
  """Parses and checks a spec: known kind, known task, options the task accepts.

  `task:arithmetic?difficulty=1-5&unique=true` → DataSpec("task", "arithmetic",
  {"difficulty": [1, 2, 3, 4, 5], "unique": True}).

  Raises:
    ValueError: a malformed spec, an unknown kind, an option that is not key=value, an option
      the task does not take (naming the valid ones), or options on a file spec.
    KeyError: an unknown task (naming the valid ones).
  """
  base, _, query = spec.partition("?")
  kind, sep, target = base.partition(":")
  if not sep or not target:
    raise ValueError(f"dataset spec {spec!r} must be 'kind:name_or_path'; "
                     f"kinds: {', '.join(dataset_kinds())}")
  if kind != "task" and kind not in jsonl.FORMATS:
    raise ValueError(f"unknown dataset kind {kind!r} in {spec!r}; "
                     f"valid kinds: {', '.join(dataset_kinds())}")
  options = {}
  for item in filter(None, query.split("&")):
    key, eq, value = item.partition("=")
    if not eq or not key:
      raise ValueError(f"option {item!r} in {spec!r} must be key=value")
    options[key] = _parse_value(value)
  if kind != "task":
    if options:
      raise ValueError(f"options {sorted(options)} apply to tasks, not to {kind} files ({spec!r})")
    return DataSpec(kind, target, options)
  valid = task_options(target)   # KeyError naming the valid tasks
  unknown = sorted(set(options) - set(valid))
  if unknown:
    raise ValueError(f"unknown option(s) {unknown} for task {target!r} in {spec!r}; "
                     f"valid options: {', '.join(valid) or '(none)'}")
  return DataSpec(kind, target, options)
