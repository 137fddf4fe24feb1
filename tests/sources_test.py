"""`load_dataset` spec resolution."""
import json

import pytest

from concise_jax import data
from concise_jax.data import tfds_builders


def test_task_spec():
  examples = data.load_dataset("task:add_1digit", n=8, seed=1)
  assert len(examples) == 8 and all(e.source == "add_1digit" for e in examples)
  hard = data.load_dataset("task:arithmetic", split="test", n=5, difficulty=4)
  assert all(e.difficulty == 4 and e.split == "test" for e in hard)


def test_file_spec_reads_jsonl_or_tfds(tmp_path):
  path = tmp_path / "gsm8k_test.jsonl"
  path.write_text(json.dumps({"question": "q", "answer": "#### 5"}) + "\n", encoding="utf-8")
  direct = data.load_dataset(f"gsm8k:{path}")
  assert [e.answer for e in direct] == ["5"] and direct[0].split == "test"
  prepared = data.load_dataset(f"gsm8k:{path}", data_dir=str(tmp_path / "tfds"))
  assert isinstance(prepared, tfds_builders.ExampleSource) and prepared[0] == direct[0]


def test_bad_specs():
  with pytest.raises(ValueError, match="valid kinds: task, gsm8k, math, mawps"):
    data.load_dataset("csv:/tmp/x.csv")
  with pytest.raises(ValueError, match="must be 'kind:name_or_path'"):
    data.load_dataset("add_1digit")
  with pytest.raises(KeyError, match="valid choices: add_1digit"):
    data.load_dataset("task:add_9digit")
  with pytest.raises(TypeError, match="apply to tasks"):
    data.load_dataset("gsm8k:/tmp/x.jsonl", difficulty=2)


def test_instruction_suffix():
  example = data.load_dataset("task:add_1digit", n=1)[0]
  assert data.add_instruction(example) == example.prompt
  assert data.add_instruction(example, "brief") == example.prompt + "\nAnswer with just the number."
  assert data.add_instruction(example, "Be brief.").endswith("?\nBe brief.")


def test_spec_query_carries_task_options():
  hard = data.load_dataset("task:arithmetic?difficulty=4", split="test", n=5)
  assert [e.difficulty for e in hard] == [4] * 5
  mixed = data.load_dataset("task:arithmetic?difficulty=1-2&unique=true", n=20, seed=3)
  assert {e.difficulty for e in mixed} == {1, 2} and len({e.prompt for e in mixed}) == 20
  # keyword options override the query
  assert {e.difficulty for e in data.load_dataset("task:arithmetic?difficulty=4", n=3,
                                                  difficulty=5)} == {5}


def test_spec_errors_name_the_valid_choices():
  with pytest.raises(ValueError, match=r"unknown option\(s\) \['levels'\] for task 'countdown'"
                                       r".*valid options: difficulty, unique"):
    data.parse_data_spec("task:countdown?levels=2")
  with pytest.raises(ValueError, match="valid options: unique"):
    data.load_dataset("task:add_1digit?difficulty=2")
  with pytest.raises(ValueError, match="option 'difficulty' in .* must be key=value"):
    data.parse_data_spec("task:arithmetic?difficulty")
  with pytest.raises(ValueError, match=r"options \['difficulty'\] apply to tasks, not to gsm8k"):
    data.parse_data_spec("gsm8k:/tmp/x.jsonl?difficulty=2")
  with pytest.raises(KeyError, match="valid choices: add_1digit"):
    data.parse_data_spec("task:add_9digit?unique=true")
  assert data.sources.dataset_kinds() == data.dataset_kinds() == ["task", "gsm8k", "math", "mawps"]
