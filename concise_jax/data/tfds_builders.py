"""tensorflow-datasets builders over local JSONL files, read back without TensorFlow.

TPU users already run tfds + grain, so real datasets take that route: a `GeneratorBasedBuilder`
per format turns one local file into one split, `download_and_prepare(file_format=
"array_record")` writes it under a data dir the caller chooses, and `as_data_source` reads it
with random access (TensorFlow is only needed by `as_dataset`, which we never call).

Nothing is downloaded: tfds's own `gsm8k` builder fetches at prepare time and it has no
Hendrycks MATH. Shuffling is disabled so records keep file order (shuffling is the pipeline's
job, with its own seed). The builder config name carries a fingerprint of the file's path, size
and modification time (and the bad-row policy), so an edited file is prepared afresh instead of
read stale, and an unchanged one is read back without re-parsing.

Training (`train.load_prompts`) and `python -m concise_jax.eval` load files this way, into
`config.data.data_dir` / `--data_dir` (default `default_data_dir()`).
"""
import hashlib
import os
import time
from typing import Any

import tensorflow_datasets as tfds
from absl import logging

from concise_jax.data import example as example_lib
from concise_jax.data import jsonl
from concise_jax.data.example import Example

_TEXT_FIELDS = ("id", "prompt", "answer", "difficulty", "split", "source", "meta")


def default_data_dir() -> str:
  """Where prepared files go unless a config or flag says otherwise: `$CONCISE_JAX_DATA_DIR`,
  else `$XDG_CACHE_HOME/concise_jax/tfds` (`~/.cache/concise_jax/tfds`)."""
  if os.environ.get("CONCISE_JAX_DATA_DIR"):
    return os.environ["CONCISE_JAX_DATA_DIR"]
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "concise_jax", "tfds")


def _config_name(path: str, split: str, bad_rows: str = "error") -> str:
  stat = os.stat(path)
  key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}" + ("" if bad_rows == "error" else "|drop")
  fingerprint = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
  stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
  return f"{stem.lower()}_{split}_{fingerprint}"


class _LocalJsonl(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One split read from one local JSONL file of format `FORMAT` (see `jsonl.FORMATS`)."""

  VERSION = tfds.core.Version("1.0.0")
  FORMAT = ""
  # Local data has no download checksums file. tfds would look for one next to this module,
  # and on an installed package that lookup imports `importlib_resources`, which tfds does not
  # install; None skips it.
  code_path = None

  def __init__(self, *, path: str, split: str | None = None, bad_rows: str = "error",
               **kwargs: Any):
    """Args: path: the JSONL file; split: its split name (default from the file name);
    bad_rows: "error" or "drop" (`jsonl.read_jsonl`); kwargs: for `tfds.core.DatasetBuilder`
    (e.g. `data_dir`)."""
    if not os.path.isfile(path):
      raise jsonl.DataError(f"{path}: no such file")
    self._path = os.path.abspath(path)
    self._split = split or jsonl.infer_split(path)
    self._bad_rows = bad_rows
    config = tfds.core.BuilderConfig(name=_config_name(self._path, self._split, bad_rows))
    super().__init__(config=config, **kwargs)

  @property
  def file_split(self) -> str:
    """The name of the one split this builder writes."""
    return self._split

  def _info(self) -> tfds.core.DatasetInfo:
    features = tfds.features.FeaturesDict({k: tfds.features.Text() for k in _TEXT_FIELDS})
    return tfds.core.DatasetInfo(
        builder=self, description=f"{self.FORMAT} examples from {self._path}",
        features=features, disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # local file: nothing to download
    return {self._split: self._generate_examples()}

  def _generate_examples(self):
    for i, ex in enumerate(jsonl.read_jsonl(self.FORMAT, self._path, self._split,
                                            bad_rows=self._bad_rows)):
      yield i, example_lib.to_record(ex)


class LocalGsm8k(_LocalJsonl, skip_registration=True):
  """GSM8K: `question` / `answer` ending in `#### N`."""
  FORMAT = "gsm8k"


class LocalMath(_LocalJsonl, skip_registration=True):
  """MATH / MATH-500: `problem` / `solution` with `\\boxed{}` / `answer`."""
  FORMAT = "math"


class LocalMawps(_LocalJsonl, skip_registration=True):
  """MAWPS-style word problems: `input` / `target`."""
  FORMAT = "mawps"


BUILDERS = {cls.FORMAT: cls for cls in (LocalGsm8k, LocalMath, LocalMawps)}


def is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
  """True when this file version was already prepared under the builder's data dir."""
  return os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json"))


class ExampleSource:
  """Random access to a prepared split as `Example`s (a grain `RandomAccessDataSource`)."""

  def __init__(self, records):
    self._records = records

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> Example:
    return example_lib.from_record(self._records[index])

  def __iter__(self):
    return (self[i] for i in range(len(self)))

  def __repr__(self) -> str:
    return f"ExampleSource({self._records!r})"


def prepare(kind: str, path: str, data_dir: str, split: str | None = None, *,
            bad_rows: str = "error") -> ExampleSource:
  """Prepares `path` as array_record under `data_dir` (once) and opens it.

  Args:
    kind: "gsm8k", "math" or "mawps".
    path: the local JSONL file.
    data_dir: where tfds writes the prepared split (reused on later calls).
    split: split name; default from the file name.
    bad_rows: "error" or "drop" rows with a bad field, as `jsonl.read_jsonl`.

  Returns:
    A random-access source of `Example`s in file order.

  Raises:
    KeyError: unknown `kind` (the message lists the valid ones).
    jsonl.DataError: missing file or a bad line, naming the file, line and field.
  """
  if kind not in BUILDERS:
    raise KeyError(f"unknown file format {kind!r}; valid choices: {', '.join(sorted(BUILDERS))}")
  builder = BUILDERS[kind](path=path, split=split, bad_rows=bad_rows, data_dir=data_dir)
  if not is_prepared(builder):
    t0 = time.perf_counter()
    builder.download_and_prepare(file_format="array_record")
    logging.info("prepared %s into %s in %.2fs", path, builder.data_dir, time.perf_counter() - t0)
  return ExampleSource(builder.as_data_source(split=builder.file_split))
