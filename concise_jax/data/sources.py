"""`load_dataset`: one string names where prompts come from (`task:add_1digit`, `gsm8k:path`)."""
from typing import Any, Sequence

from concise_jax.data import generators
from concise_jax.data import jsonl
from concise_jax.data import tfds_builders
from concise_jax.data.example import Example


def dataset_kinds() -> list[str]:
  """Valid spec prefixes: `task` and every registered file format."""
  return ["task"] + jsonl.FORMATS.names()


def load_dataset(spec: str, *, split: str | None = None, n: int = 1000, seed: int = 0,
                 data_dir: str | None = None, bad_rows: str = "error",
                 **task_kwargs: Any) -> Sequence[Example]:
  """Resolves a dataset spec to random-access examples.

  Args:
    spec: `task:<name>` for a built-in generator (`task:add_1digit`, `task:arithmetic`), or
      `<format>:<path>` for a local JSONL file (`gsm8k:`, `math:`, `mawps:`).
    split: for tasks "train" (default) or "test"; for files, overrides the split inferred
      from the file name.
    n: number of generated examples (tasks only).
    seed: generator seed (tasks only; data order is the pipeline's seed).
    data_dir: for files, prepare them with tfds into this dir and read the array_record copy;
      None reads the JSONL directly.
    bad_rows: for files, "error" or "drop" rows with a bad field (`jsonl.read_jsonl`).
    **task_kwargs: task options such as `difficulty=3` or `unique=True`.

  Returns:
    A list of `Example`s, or a tfds-backed `ExampleSource` when `data_dir` is given.

  Raises:
    ValueError: a malformed spec or unknown kind (the message lists the valid kinds).
    KeyError: an unknown task name (the message lists the valid tasks).
  """
  kind, sep, target = spec.partition(":")
  if not sep or not target:
    raise ValueError(f"dataset spec {spec!r} must be 'kind:name_or_path'; "
                     f"kinds: {', '.join(dataset_kinds())}")
  if kind == "task":
    return generators.generate(target, split or "train", n, seed, **task_kwargs)
  if kind not in jsonl.FORMATS:
    raise ValueError(f"unknown dataset kind {kind!r} in {spec!r}; "
                     f"valid kinds: {', '.join(dataset_kinds())}")
  if task_kwargs:
    raise TypeError(f"options {sorted(task_kwargs)} apply to tasks, not to {kind} files")
  if data_dir is not None:
    return tfds_builders.prepare(kind, target, data_dir, split)
  return jsonl.read_jsonl(kind, target, split, bad_rows=bad_rows)
