"""Integration checks on the real dataset copies in ../shared/data (skipped when absent)."""
import json
from pathlib import Path

import pytest

from concise_jax.data import jsonl
from concise_jax.verify import extract
from concise_jax.verify import verify

DATA = Path(__file__).parents[2] / "shared" / "data"


def _path(name: str) -> str:
  path = DATA / name
  if not path.is_file():
    pytest.skip(f"{path} not present (real data lives only beside the repo)")
  return str(path)


def _raw_rows(path: str) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("name, count, spot", [
    ("gsm8k_train.jsonl", 7473, {0: "72", 345: "1080", 5844: "-47", 7472: "50"}),
    ("gsm8k_test.jsonl", 1319, {0: "18", 146: "2125", 1113: "-3", 1318: "14"}),
])
def test_gsm8k_final_answer_of_every_item_parses(name, count, spot):
  path = _path(name)
  examples = jsonl.read_jsonl("gsm8k", path)
  assert len(examples) == count
  for index, answer in spot.items():
    assert examples[index].answer == answer
  # Independent reading: the text after the last '####', commas dropped, as an integer.
  raw = [r["answer"].rsplit("####", 1)[1].strip().replace(",", "") for r in _raw_rows(path)]
  assert [int(e.answer) for e in examples] == [int(a) for a in raw]
  # The numeric checker reads each reference solution's '#### N' line as correct.
  assert all(verify.is_correct(e.meta["solution"], e.answer, "numeric") for e in examples)


def test_math500_boxed_solution_agrees_with_answer_field():
  examples = jsonl.read_jsonl("math", _path("math500_test.jsonl"))
  assert len(examples) == 500 and examples[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
  agree = sum(verify.is_correct(e.meta["solution"], e.answer, "math") for e in examples)
  print(f"MATH-500: reference boxed answer verifies for {agree}/500")
  assert agree >= 495  # >= 99%


@pytest.mark.integration  # 600 sympy equivalence checks: ~7 s on 2 cores
def test_math500_agreement_through_math_verify_alone():
  """The same check without the string/number fast paths, so sympy equivalence is exercised;
  and a negative control (each solution against the next item's answer) must mostly fail."""
  examples = jsonl.read_jsonl("math", _path("math500_test.jsonl"))
  boxed = [extract.find_boxed(e.meta["solution"])[1] for e in examples]
  agree = sum(verify.math_equal(b, e.answer) for b, e in zip(boxed, examples))
  print(f"MATH-500 via math-verify only: {agree}/500")
  assert agree >= 495
  shifted = sum(verify.math_equal(b, e.answer) for b, e in zip(boxed[:100], examples[1:101]))
  assert shifted <= 5  # only coincidentally equal answers


def test_mawps_targets_parse():
  examples = jsonl.read_jsonl("mawps", _path("mawps_test.jsonl"))
  assert len(examples) == 2065
  assert (examples[0].answer, examples[0].difficulty) == ("43", "singleeq")
  raw = _raw_rows(_path("mawps_test.jsonl"))
  assert all(float(e.answer) == r["target"] for e, r in zip(examples, raw))
