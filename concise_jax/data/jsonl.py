"""Readers for local JSONL datasets: GSM8K, MATH-style and MAWPS-style word problems.

Each format registers a row parser in `FORMATS`, with the signature

    parse(row: dict) -> (prompt, answer, difficulty, meta)

raising `FieldError(field, message)` for a bad row. `read_jsonl` adds the file and line to every
error, so a broken file is fixed without hunting: `train.jsonl:17: field 'answer': ...`.
"""
import json
import os
import re
from typing import Any

from absl import logging

from concise_jax.data.example import Example
from concise_jax.registry import Registry
from concise_jax.verify import extract
from concise_jax.verify import numbers
from concise_jax.verify import verify

FORMATS = Registry("file format")

Parsed = tuple[str, str, int | str, dict[str, Any]]


class DataError(ValueError):
  """A problem with a data file, located by file, line and field."""


class FieldError(ValueError):
  """A bad field in one row; `read_jsonl` turns it into a located `DataError`."""

  def __init__(self, field: str, message: str):
    super().__init__(f"field {field!r}: {message}")


def _text_field(row: dict[str, Any], field: str) -> str:
  """A required non-empty string field."""
  if field not in row:
    raise FieldError(field, f"missing (row has {sorted(row)})")
  value = row[field]
  if not isinstance(value, str) or not value.strip():
    raise FieldError(field, f"expected a non-empty string, got {value!r:.80}")
  return value


@FORMATS.register("gsm8k")
def parse_gsm8k(row: dict[str, Any]) -> Parsed:
  """`question` / `answer` whose last line is `#### N`; difficulty = solution steps."""
  question, solution = _text_field(row, "question"), _text_field(row, "answer")
  head, marker, final = solution.rpartition("####")
  value = numbers.parse_number(final.strip()) if marker else None
  if value is None:
    raise FieldError("answer", f"no '#### N' final number in {solution[-80:]!r}")
  steps = sum(1 for line in head.splitlines() if line.strip())
  return question, numbers.format_number(value), steps, {"solution": solution}


_LEVEL = re.compile(r"(?:Level\s*)?(\d+)")


def _math_level(row: dict[str, Any]) -> int | str:
  level = row.get("level", "unknown")
  m = _LEVEL.fullmatch(str(level).strip())
  return int(m.group(1)) if m else str(level)


@FORMATS.register("math")
def parse_math(row: dict[str, Any]) -> Parsed:
  """`problem` / `solution` with `\\boxed{}` / optional `answer` (MATH, MATH-500)."""
  problem = _text_field(row, "problem")
  if isinstance(row.get("answer"), str) and row["answer"].strip():
    answer = row["answer"].strip()
  else:
    boxed = extract.find_boxed(row.get("solution") or "")
    if boxed is None or not boxed[1].strip():
      raise FieldError("answer", "missing, and no \\boxed{} answer in 'solution' either")
    answer = boxed[1].strip()
  meta = {k: row[k] for k in ("solution", "subject", "unique_id") if k in row}
  meta["verify_kind"] = "math"
  return problem, answer, _math_level(row), meta


@FORMATS.register("mawps")
def parse_mawps(row: dict[str, Any]) -> Parsed:
  """`input` / numeric `target` (MAWPS, SVAMP-style); difficulty = the row's `type` if any."""
  question = _text_field(row, "input")
  if "target" not in row:
    raise FieldError("target", f"missing (row has {sorted(row)})")
  target = row["target"]
  if isinstance(target, bool) or not isinstance(target, (int, float, str)):
    raise FieldError("target", f"expected a number, got {target!r:.80}")
  try:
    answer = numbers.format_number(target)
  except ValueError:
    raise FieldError("target", f"expected a number, got {target!r:.80}") from None
  meta = {k: row[k] for k in ("type", "idx", "equation") if k in row}
  return question, answer, str(row.get("type", "unknown")), meta


def infer_split(path: str) -> str:
  """`gsm8k_train.jsonl` → "train"; names with "test" → "test"; otherwise "train"."""
  name = os.path.basename(path).lower()
  return "test" if "test" in name else "train"


def _rows(path: str):
  """(line number, parsed JSON object) for each non-blank line; errors name file and line."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file")
  with open(path, "rb") as f:
    for line_no, raw in enumerate(f, start=1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise DataError(f"{path}:{line_no}: not UTF-8 (byte 0x{raw[e.start]:02x} at column "
                        f"{e.start + 1})") from None
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{path}:{line_no}: malformed JSON ({e.msg} at column {e.colno})") from None
      if not isinstance(row, dict):
        raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
      yield line_no, row


# The row field each format reads its gold answer from (MATH falls back to `solution`).
ANSWER_FIELDS = {"gsm8k": "answer", "math": "answer", "mawps": "target"}


def _check_answer(kind: str, row: dict[str, Any], answer: str, meta: dict[str, Any]) -> None:
  """The gold answer must parse for its answer kind, or every completion scores "incorrect"."""
  problem = verify.reference_problem(answer, meta.get("verify_kind", "numeric"))
  if problem is not None:
    field = ANSWER_FIELDS.get(kind, "answer")
    raise FieldError(field if field in row or "solution" not in row else "solution", problem)


def read_jsonl(kind: str, path: str, split: str | None = None, *,
               bad_rows: str = "error") -> list[Example]:
  """Reads a local JSONL file of format `kind` into examples, in file order.

  Every gold answer is parsed with its answer kind's checker as the file loads
  (`verify.reference_problem`): a reference like `9 (apples)` would otherwise make every
  completion "incorrect" and the reward a silent constant.

  Args:
    kind: a registered format: "gsm8k", "math" or "mawps".
    path: the file.
    split: the examples' split; default from the file name (`infer_split`).
    bad_rows: "error" (default) fails on the first row with a missing or unparsable field;
      "drop" skips such rows and logs how many were dropped (malformed JSON, non-UTF-8 lines
      and empty files fail either way).

  Returns:
    One `Example` per good non-blank line, with id `{kind}/{split}/{item index:05d}`.

  Raises:
    DataError: missing or empty file, a line that is not UTF-8 or not JSON, or a
      missing/invalid field, naming the file, the line and the field.
  """
  if bad_rows not in ("error", "drop"):
    raise ValueError(f"bad_rows={bad_rows!r}; valid choices: error, drop")
  parse = FORMATS.get(kind)
  split = split or infer_split(path)
  examples, dropped, rows = [], [], 0
  for line_no, row in _rows(path):
    rows += 1
    try:
      prompt, answer, difficulty, meta = parse(row)
      _check_answer(kind, row, answer, meta)
    except FieldError as e:
      if bad_rows == "error":
        raise DataError(f"{path}:{line_no}: {e}") from None
      dropped.append(f"{path}:{line_no}: {e}")
      continue
    examples.append(Example(id=f"{kind}/{split}/{len(examples):05d}", prompt=prompt,
                            answer=answer, difficulty=difficulty, split=split, source=kind,
                            meta=meta))
  if rows == 0:
    raise DataError(f"{path}: no rows (the file is empty)")
  if dropped:
    if not examples:
      raise DataError(f"{path}: all {rows} rows have a bad field (first: {dropped[0]})")
    logging.warning("%s: dropped %d of %d rows with a bad field (data.bad_rows='drop'); "
                    "first: %s", path, len(dropped), rows, dropped[0])
  return examples
