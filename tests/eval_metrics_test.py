"""Evaluation metrics against brute force and hand-computed values; runner and report helpers."""
from fractions import Fraction
import itertools
import json
import math

import pytest

from concise_jax import data
from concise_jax.eval import metrics, report, runner


def _brute_force_pass_at_k(n: int, c: int, k: int) -> Fraction:
  """Share of all k-subsets of n samples (the first c correct) holding a correct sample."""
  subsets = list(itertools.combinations(range(n), k))
  return Fraction(sum(any(i < c for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 10])
def test_pass_at_k_matches_enumeration_over_all_subsets(n):
  for c in range(n + 1):
    for k in range(1, n + 1):
      assert metrics.pass_at_k(n, c, k) == pytest.approx(
          float(_brute_force_pass_at_k(n, c, k)), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
  # C(2000, 100) ~ 1e170 and C(5000, 400) > 1e308: the exact ratio via integers still agrees.
  for n, c, k in [(2000, 3, 100), (5000, 7, 400), (1000, 1, 1)]:
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert metrics.pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9)


def test_pass_at_k_edges_and_errors():
  assert metrics.pass_at_k(10, 0, 5) == 0.0
  assert metrics.pass_at_k(10, 10, 1) == 1.0
  assert metrics.pass_at_k(10, 6, 5) == 1.0          # only 4 wrong: every 5-subset hits
  assert metrics.pass_at_k(4, 1, 1) == pytest.approx(0.25)
  for bad in [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)]:
    with pytest.raises(ValueError):
      metrics.pass_at_k(*bad)


def test_pass_at_k_ladder():
  assert metrics.pass_at_k_ladder(0) == []
  assert metrics.pass_at_k_ladder(1) == [1]
  assert metrics.pass_at_k_ladder(8) == [1, 2, 4, 8]
  assert metrics.pass_at_k_ladder(6) == [1, 2, 4, 6]


def test_length_stats_hand_values():
  s = metrics.length_stats(list(range(1, 11)))
  assert s == {"mean": 5.5, "median": 5.5, "p90": pytest.approx(9.1), "max": 10.0}
  s = metrics.length_stats([10, 20, 30, 40])
  assert (s["mean"], s["median"], s["p90"]) == (25.0, 25.0, pytest.approx(37.0))
  assert all(math.isnan(v) for v in metrics.length_stats([]).values())


def test_accuracy_per_1k_tokens_definition():
  # 3 correct out of 4 completions of 100, 200, 150, 150 tokens: 3 / 600 * 1000 = 5.
  assert metrics.accuracy_per_1k_tokens(3, 600) == pytest.approx(5.0)
  assert metrics.accuracy_per_1k_tokens(0, 600) == 0.0
  assert metrics.accuracy_per_1k_tokens(0, 0) == 0.0


def test_reflection_counts_whole_words_any_case():
  text = ("Wait, 2 + 2 = 4. Hmm... WAIT. Alternatively, let me\ncheck: I waited, awaiting. "
          "Let me checkout the double-check. Let me verify.")
  counts = metrics.reflection_counts(text)
  assert counts == {"wait": 2, "alternatively": 1, "let me check": 1, "let me verify": 1,
                    "double-check": 1, "hmm": 1}
  assert metrics.reflection_counts("no reflection here", ("wait",)) == {"wait": 0}


def _c(correct, tokens, truncated=False, text=""):
  return {"text": text, "tokens": tokens, "correct": correct, "truncated": truncated}


RECORDS = [
    {"id": "a", "difficulty": 1, "greedy": _c(True, 10, text="wait, 3"),
     "samples": [_c(True, 10), _c(False, 20), _c(False, 30, True), _c(True, 40)]},
    {"id": "b", "difficulty": 2, "greedy": _c(False, 30, True),
     "samples": [_c(False, 10), _c(False, 10), _c(False, 10), _c(False, 10)]},
    {"id": "c", "difficulty": 10, "greedy": _c(True, 20, text="Hmm. Wait"),
     "samples": [_c(True, 5), _c(True, 5), _c(True, 5), _c(False, 5)]},
]


def test_summarize_hand_computed():
  s = metrics.summarize(RECORDS)
  g = s["greedy"]
  assert s["n"] == 3
  assert g["accuracy"] == pytest.approx(2 / 3) and g["num_correct"] == 2
  assert g["total_tokens"] == 60 and g["tokens"]["mean"] == 20.0
  assert g["acc_per_1k_tokens"] == pytest.approx(2 / 60 * 1000)
  assert g["truncation_rate"] == pytest.approx(1 / 3)
  assert g["reflections"]["wait"] == 2 and g["reflections"]["hmm"] == 1
  assert g["reflections_per_completion"] == pytest.approx(1.0)
  sm = s["sampled"]
  assert sm["k"] == 4 and sm["num_completions"] == 12
  assert sm["mean_at_k"] == pytest.approx(5 / 12)     # (2 + 0 + 3) / 12
  assert sm["total_tokens"] == 160                # 100 + 40 + 20
  assert sm["acc_per_1k_tokens"] == pytest.approx(5 / 160 * 1000)
  assert sm["truncation_rate"] == pytest.approx(1 / 12)
  # pass@1 under sampling is mean@k; pass@4 = share of problems with any correct sample.
  assert sm["pass_at_k"]["1"] == pytest.approx(sm["mean_at_k"])
  assert sm["pass_at_k"]["4"] == pytest.approx(2 / 3)
  expected_p2 = (metrics.pass_at_k(4, 2, 2) + 0 + metrics.pass_at_k(4, 3, 2)) / 3
  assert sm["pass_at_k"]["2"] == pytest.approx(expected_p2)


def test_summarize_rejects_mixed_sample_counts():
  bad = [RECORDS[0], {**RECORDS[1], "samples": RECORDS[1]["samples"][:2]}]
  with pytest.raises(ValueError, match="different sample counts"):
    metrics.summarize(bad)


def test_breakdown_groups_in_natural_order():
  by = metrics.breakdowns(RECORDS)
  assert list(by) == ["difficulty"]                   # no record has a subject
  assert list(by["difficulty"]) == ["1", "2", "10"]
  assert by["difficulty"]["10"]["greedy"]["accuracy"] == 1.0
  assert by["difficulty"]["2"]["sampled"]["pass_at_k"]["4"] == 0.0


def test_pareto_front():
  tokens = [100, 50, 200, 50, 120, 80]
  acc = [0.5, 0.3, 0.6, 0.3, 0.4, 0.5]
  # 0 is dominated by 5 (fewer tokens, same accuracy); 4 by 0 and 5; 1 and 3 tie.
  assert metrics.pareto_front(tokens, acc) == [1, 3, 5, 2]


def test_chunks_have_fixed_size_and_pad_with_the_last_index():
  assert runner.chunk_indices(5, 2) == [[0, 1], [2, 3], [4, 4]]
  assert runner.chunk_indices(4, 2) == [[0, 1], [2, 3]]
  assert runner.chunk_indices(1, 3) == [[0, 0, 0]]
  assert runner.chunk_indices(0, 3) == []


def test_data_specs_and_labels():
  assert data.parse_data_spec("task:arithmetic?difficulty=1-3&unique=true") == data.DataSpec(
      "task", "arithmetic", {"difficulty": [1, 2, 3], "unique": True})
  assert data.parse_data_spec("gsm8k:/d/gsm8k_test.jsonl") == data.DataSpec(
      "gsm8k", "/d/gsm8k_test.jsonl", {})
  assert runner.dataset_label("gsm8k:/d/gsm8k_test.jsonl") == "gsm8k_test"
  assert runner.dataset_label("task:add_1digit") == "add_1digit"
  examples = runner.load_examples("task:word_problems?difficulty=1-2", 6, 0)
  assert len(examples) == 6 and {e.split for e in examples} == {"test"}
  assert {e.difficulty for e in examples} <= {1, 2}


def test_training_workdir_without_checkpoints_names_the_directory(tmp_path):
  (tmp_path / "ckpt").mkdir()     # loading a real workdir: tests/train_eval_test.py
  with pytest.raises(FileNotFoundError, match="no checkpoint in .*ckpt"):
    runner.load_policy(str(tmp_path))


def test_markdown_rows_match_the_summaries():
  results = report.build_results(
      {"checkpoint": "x"},
      {"one": ("task:one", RECORDS, {"greedy": {"tok_per_s": 12.0, "tok_per_s_steady": 15.0}}),
       "two": ("task:two", RECORDS[:1], {})})
  md = report.markdown(results)
  assert "| one | 3 | 66.7 | 20.0 | 20 | 28 | 33.33 | 33.3 | 1.00 | 15.0 |" in md
  assert "| **all** | 4 |" in md
  assert "| mean@4 % | pass@4 % |" in md
  assert "**one** by difficulty" in md
  assert results["overall"]["n"] == 4


def test_merge_keeps_every_dataset_and_drops_the_pooled_row():
  one = report.build_results({"checkpoint": "x"}, {"a": ("task:a", RECORDS, {})})
  two = report.build_results({"checkpoint": "x"}, {"b": ("task:b", RECORDS[:2], {}),
                                                   "c": ("task:c", RECORDS[:1], {})})
  merged = report.merge([one, two])
  assert list(merged["datasets"]) == ["a", "b", "c"] and "overall" not in merged
  md = report.markdown(merged)
  assert "| b | 2 |" in md and "**all**" not in md
  with pytest.raises(ValueError, match="more than one"):
    report.merge([one, one])


def test_flatten_keeps_numeric_leaves_under_slash_names():
  summary = {"n": 2, "greedy": {"accuracy": 0.5, "tokens": {"mean": 3.0, "max": 4.0},
                                "flag": True, "name": "x"}}
  assert metrics.flatten(summary, "eval/") == {
      "eval/n": 2.0, "eval/greedy/accuracy": 0.5, "eval/greedy/tokens/mean": 3.0,
      "eval/greedy/tokens/max": 4.0}


def test_eval_files_go_through_the_prepared_tfds_copy(tmp_path):
  path = tmp_path / "toy_test.jsonl"
  path.write_text("".join(json.dumps({"input": f"q{i}", "target": i}) + "\n" for i in range(5)),
                  encoding="utf-8")
  examples = runner.load_examples(f"mawps:{path}", 3, 0, data_dir=str(tmp_path / "prepared"))
  assert [e.answer for e in examples] == ["0", "1", "2"] and examples[0].split == "test"
  assert (tmp_path / "prepared" / "local_mawps").is_dir()
