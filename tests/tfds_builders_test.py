"""tfds builders over local files: array_record preparation and TensorFlow-free reading."""
import json
import os

import pytest

from concise_jax.data import jsonl
from concise_jax.data import tfds_builders


def _write_gsm8k(path, n):
  rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i:,}"}
          for i in range(n)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
  return str(path)


def test_prepared_split_matches_the_file_in_order(tmp_path):
  path = _write_gsm8k(tmp_path / "toy_train.jsonl", 40)
  source = tfds_builders.prepare("gsm8k", path, str(tmp_path / "tfds"))
  expected = jsonl.read_jsonl("gsm8k", path)
  assert len(source) == 40
  assert [source[i] for i in range(40)] == expected  # disable_shuffling keeps file order
  assert source[20].answer == "40" and source[39].answer == "78"
  assert any(f.endswith(".array_record-00000-of-00001")
             for _, _, files in os.walk(tmp_path / "tfds") for f in files)


def test_prepare_reuses_and_refreshes(tmp_path):
  path = _write_gsm8k(tmp_path / "toy_test.jsonl", 5)
  data_dir = str(tmp_path / "tfds")
  assert len(tfds_builders.prepare("gsm8k", path, data_dir)) == 5
  assert len(tfds_builders.prepare("gsm8k", path, data_dir)) == 5  # prepared copy reused
  _write_gsm8k(tmp_path / "toy_test.jsonl", 7)   # an edited file gets a new fingerprint
  source = tfds_builders.prepare("gsm8k", path, data_dir)
  assert len(source) == 7 and source[0].split == "test"


def test_math_and_mawps_builders(tmp_path):
  math_path = tmp_path / "m.jsonl"
  math_path.write_text(json.dumps({"problem": "p", "solution": "\\boxed{\\frac{1}{2}}",
                                   "level": "Level 3"}) + "\n", encoding="utf-8")
  mawps_path = tmp_path / "w.jsonl"
  mawps_path.write_text(json.dumps({"input": "q", "target": 2.5}) + "\n", encoding="utf-8")
  item = tfds_builders.prepare("math", str(math_path), str(tmp_path / "tfds"))[0]
  assert (item.answer, item.difficulty, item.meta["verify_kind"]) == ("\\frac{1}{2}", 3, "math")
  assert tfds_builders.prepare("mawps", str(mawps_path), str(tmp_path / "tfds"))[0].answer == "2.5"


def test_bad_file_errors_are_located(tmp_path):
  with pytest.raises(jsonl.DataError, match="no such file"):
    tfds_builders.prepare("gsm8k", str(tmp_path / "missing.jsonl"), str(tmp_path / "tfds"))
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n', encoding="utf-8")
  with pytest.raises(jsonl.DataError, match=f"{bad}:2: field 'answer'"):
    tfds_builders.prepare("gsm8k", str(bad), str(tmp_path / "tfds"))
  with pytest.raises(KeyError, match="gsm8k, math, mawps"):
    tfds_builders.prepare("csv", str(bad), str(tmp_path / "tfds"))
