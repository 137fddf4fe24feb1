"""Local JSONL readers on small fixture files: parsing and located error messages."""
import json

import pytest

from concise_jax.data import jsonl


def _write(path, rows):
  """Writes rows (dicts, or raw strings written as-is) as one line each."""
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                  encoding="utf-8")
  return str(path)


GSM8K_ROWS = [
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in total?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24.\nIn total 48+24 = <<48+24=72>>72.\n#### 72"},
    {"question": "How many feet are in 360 yards?",
     "answer": "360 * 3 = <<360*3=1080>>1080\n#### 1,080"},
    {"question": "The temperature fell from 3 to -5 degrees. What is it now?",
     "answer": "It is -5 degrees.\n####  -5 "},
]


def test_gsm8k_rows(tmp_path):
  path = _write(tmp_path / "gsm8k_train.jsonl", GSM8K_ROWS[:1] + [""] + GSM8K_ROWS[1:])
  examples = jsonl.read_jsonl("gsm8k", path)
  assert [e.answer for e in examples] == ["72", "1080", "-5"]  # blank line skipped
  assert [e.difficulty for e in examples] == [2, 1, 1]        # solution lines before ####
  assert [e.id for e in examples] == ["gsm8k/train/00000", "gsm8k/train/00001",
                                      "gsm8k/train/00002"]
  assert examples[0].prompt == GSM8K_ROWS[0]["question"]
  assert examples[0].split == "train" and examples[0].source == "gsm8k"
  assert examples[1].meta["solution"].endswith("#### 1,080")


def test_split_comes_from_file_name_unless_given(tmp_path):
  path = _write(tmp_path / "gsm8k_test.jsonl", GSM8K_ROWS[:1])
  assert jsonl.read_jsonl("gsm8k", path)[0].split == "test"
  assert jsonl.read_jsonl("gsm8k", path, split="dev")[0].split == "dev"


def test_math_rows(tmp_path):
  rows = [
      {"problem": "Compute 1/2 + 1/4.", "solution": "It is $\\boxed{\\frac{3}{4}}$.",
       "answer": "\\frac{3}{4}", "subject": "Algebra", "level": 2, "unique_id": "a/1.json"},
      {"problem": "Find the set.", "solution": "So $\\boxed{\\{1, \\frac{1}{2}\\}}$.",
       "level": "Level 5"},
      {"problem": "Odd level.", "solution": "\\boxed{7}", "level": "?"},
  ]
  examples = jsonl.read_jsonl("math", _write(tmp_path / "math500_test.jsonl", rows))
  assert [e.answer for e in examples] == ["\\frac{3}{4}", "\\{1, \\frac{1}{2}\\}", "7"]
  assert [e.difficulty for e in examples] == [2, 5, "?"]
  assert examples[0].meta["subject"] == "Algebra"
  assert all(e.meta["verify_kind"] == "math" for e in examples)


def test_mawps_rows(tmp_path):
  rows = [{"input": "Joan had 70 shells and has 27 left. How many did she give?",
           "target": 43.0, "type": "singleeq", "idx": 0},
          {"input": "Each of 2 bags has 5.75 kg. Total?", "target": 11.5},
          {"input": "String target.", "target": "8"}]
  examples = jsonl.read_jsonl("mawps", _write(tmp_path / "mawps_test.jsonl", rows))
  assert [e.answer for e in examples] == ["43", "11.5", "8"]
  assert [e.difficulty for e in examples] == ["singleeq", "unknown", "unknown"]


# --- errors name the file, the line and the field ---------------------------------------------

def test_missing_file(tmp_path):
  path = str(tmp_path / "nope.jsonl")
  with pytest.raises(jsonl.DataError, match=f"{path}: no such file"):
    jsonl.read_jsonl("gsm8k", path)


def test_malformed_json(tmp_path):
  path = _write(tmp_path / "bad.jsonl", [GSM8K_ROWS[0], '{"question": "unterminated'])
  with pytest.raises(jsonl.DataError, match=f"{path}:2: malformed JSON"):
    jsonl.read_jsonl("gsm8k", path)


def test_line_that_is_not_an_object(tmp_path):
  path = _write(tmp_path / "bad.jsonl", ["[1, 2]"])
  with pytest.raises(jsonl.DataError, match=f"{path}:1: expected a JSON object, got list"):
    jsonl.read_jsonl("gsm8k", path)


@pytest.mark.parametrize("kind, row, line, field", [
    ("gsm8k", {"question": "q"}, 2, "answer"),
    ("gsm8k", {"question": "q", "answer": "no final marker"}, 2, "answer"),
    ("gsm8k", {"question": "q", "answer": "#### many"}, 2, "answer"),
    ("gsm8k", {"answer": "#### 3"}, 2, "question"),
    ("math", {"problem": "p", "solution": "no box"}, 2, "answer"),
    ("math", {"solution": "\\boxed{1}"}, 2, "problem"),
    ("mawps", {"input": "q"}, 2, "target"),
    ("mawps", {"input": "q", "target": "lots"}, 2, "target"),
    ("mawps", {"input": "", "target": 3}, 2, "input"),
])
def test_missing_or_bad_field(tmp_path, kind, row, line, field):
  good = {"gsm8k": GSM8K_ROWS[0], "math": {"problem": "p", "answer": "1"},
          "mawps": {"input": "q", "target": 1}}[kind]
  path = _write(tmp_path / "data.jsonl", [good, row])
  with pytest.raises(jsonl.DataError, match=f"{path}:{line}: field '{field}'"):
    jsonl.read_jsonl(kind, path)


def test_unknown_format_lists_valid_ones(tmp_path):
  with pytest.raises(KeyError, match="gsm8k, math, mawps"):
    jsonl.read_jsonl("csv", _write(tmp_path / "x.jsonl", [{}]))


@pytest.mark.parametrize("kind, row, field", [
    ("math", {"problem": "p", "answer": "9 (apples)"}, "answer"),
    ("math", {"problem": "p", "solution": "so \\boxed{9 apples}"}, "solution"),
    ("mawps", {"input": "q", "target": "9 (apples)"}, "target"),
    ("gsm8k", {"question": "q", "answer": "x\n#### 9 (apples)"}, "answer"),
])
def test_unparsable_gold_answer_fails_at_file_line_field(tmp_path, kind, row, field):
  good = {"gsm8k": GSM8K_ROWS[0], "math": {"problem": "p", "answer": "\\frac{1}{2}"},
          "mawps": {"input": "q", "target": 1}}[kind]
  path = _write(tmp_path / "data.jsonl", [good, row])
  with pytest.raises(jsonl.DataError, match=f"{path}:2: field '{field}'"):
    jsonl.read_jsonl(kind, path)


def test_bad_rows_can_be_dropped_and_are_counted(tmp_path, caplog):
  rows = [{"problem": "p", "answer": "1"}, {"problem": "p", "answer": "9 (apples)"},
          {"problem": "p", "answer": "\\text{Monday}"}]
  path = _write(tmp_path / "data.jsonl", rows)
  with caplog.at_level("WARNING"):
    examples = jsonl.read_jsonl("math", path, bad_rows="drop")
  assert [e.answer for e in examples] == ["1", "\\text{Monday}"]
  assert "dropped 1 of 3 rows with a bad field" in caplog.text and f"{path}:2:" in caplog.text
  with pytest.raises(jsonl.DataError, match="all 1 rows have a bad field"):
    jsonl.read_jsonl("math", _write(tmp_path / "bad.jsonl", rows[1:2]), bad_rows="drop")


def test_empty_file_and_non_utf8_line_name_file_and_line(tmp_path):
  empty = tmp_path / "empty.jsonl"
  empty.write_text("\n", encoding="utf-8")
  with pytest.raises(jsonl.DataError, match=f"{empty}: no rows"):
    jsonl.read_jsonl("mawps", str(empty))
  latin = tmp_path / "latin.jsonl"
  latin.write_bytes(b'{"input": "q", "target": 1}\n{"input": "caf\xe9", "target": 2}\n')
  with pytest.raises(jsonl.DataError, match=f"{latin}:2: not UTF-8 \\(byte 0xe9 at column 15\\)"):
    jsonl.read_jsonl("mawps", str(latin))
