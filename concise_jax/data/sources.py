"""`load_dataset`: one spec string names where prompts come from (`task:add_1digit`,
`task:arithmetic?difficulty=1-3`, `gsm8k:path`); see `specs.py` for the syntax."""
from typing import Any, Sequence

from concise_jax.data import generators
from concise_jax.data import jsonl
from concise_jax.data.example import Example
from concise_jax.data.specs import dataset_kinds  # pylint: disable=unused-import  # re-export
from concise_jax.data.specs import parse_data_spec


def load_dataset(spec: str, *, split: str | None = None, n: int = 1000, seed: int = 0,
                 data_dir: str | None = None, bad_rows: str = "error",
                 **task_kwargs: Any) -> Sequence[Example]:
  """Resolves a dataset spec to random-access examples.

  Args:
    spec: `task:<name>[?option=value&...]` for a built-in generator (`task:add_1digit`,
      `task:arithmetic?difficulty=1-5`), or `<format>:<path>` for a local JSONL file
      (`gsm8k:`, `math:`, `mawps:`).
    split: for tasks "train" (default) or "test"; for files, overrides the split inferred
      from the file name.
    n: number of generated examples (tasks only).
    seed: generator seed (tasks only; data order is the pipeline's seed).
    data_dir: for files, prepare them with the tfds builders into this dir once and read the
      array_record copy (`tfds_builders.prepare`); None reads the JSONL directly.
    bad_rows: for files, "error" or "drop" rows with a bad field (`jsonl.read_jsonl`).
    **task_kwargs: task options such as `difficulty=3` or `unique=True`; they override the
      spec's query.

  Returns:
    A list of `Example`s, or a tfds-backed `ExampleSource` when `data_dir` is given.

  Raises:
    ValueError: a malformed spec, unknown kind or unknown task option (the message lists the
      valid ones).
    KeyError: an unknown task name (the message lists the valid tasks).
    TypeError: task options passed for a file.
  """
  parsed = parse_data_spec(spec)
  if parsed.kind == "task":
    return generators.generate(parsed.target, split or "train", n, seed,
                               **{**parsed.options, **task_kwargs})
  if task_kwargs:
    raise TypeError(f"options {sorted(task_kwargs)} apply to tasks, not to {parsed.kind} files")
  if data_dir is not None:
    # tensorflow-datasets is heavy to import: only file specs on the prepared path pay for it.
    from concise_jax.data import tfds_builders  # pylint: disable=import-outside-toplevel
    return tfds_builders.prepare(parsed.kind, parsed.target, data_dir, split, bad_rows=bad_rows)
  return jsonl.read_jsonl(parsed.kind, parsed.target, split, bad_rows=bad_rows)
