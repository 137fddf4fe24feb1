"""`python -m concise_jax.eval` end to end on the tiny model, and batching invariance."""
import json
import os
import subprocess
import sys

import pytest

from concise_jax import verify
from concise_jax.eval import runner
from concise_jax.verify import Verifier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_NEW = 8
K = 3


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "concise_jax.eval", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("eval")
  proc = _cli("--checkpoint=tiny", "--data=task:word_problems?difficulty=1-2", "--n=5",
              f"--k={K}", "--temperature=1.0", f"--max_new_tokens={MAX_NEW}", "--batch_size=4",
              "--instruction=brief", f"--out_dir={out}", "--noprogress")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out, proc.stdout


def _load(out):
  with open(out / "results.json", encoding="utf-8") as f:
    results = json.load(f)
  with open(out / "completions.jsonl", encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  return results, records


@pytest.mark.integration   # the module's CLI run: end to end
def test_json_fields_and_consistency(run_dir):
  out, _ = run_dir
  results, records = _load(out)
  assert results["config"]["checkpoint"] == "tiny" and results["config"]["k"] == K
  d = results["datasets"]["word_problems?difficulty=1-2"]
  assert d["n"] == 5 and len(records) == 5
  g, s = d["greedy"], d["sampled"]
  assert g["num_completions"] == 5 and s["num_completions"] == 5 * K
  assert g["accuracy"] == pytest.approx(g["num_correct"] / 5)
  assert s["mean_at_k"] == pytest.approx(s["num_correct"] / (5 * K))
  assert set(s["pass_at_k"]) == {"1", "2", str(K)}
  assert s["pass_at_k"]["1"] == pytest.approx(s["mean_at_k"])
  greedy_tokens = [r["greedy"]["tokens"] for r in records]
  assert g["total_tokens"] == sum(greedy_tokens)
  assert g["tokens"]["mean"] == pytest.approx(sum(greedy_tokens) / 5)
  assert g["acc_per_1k_tokens"] == pytest.approx(1000 * g["num_correct"] / sum(greedy_tokens))
  assert set(d["by"]["difficulty"]) <= {"1", "2"}
  assert sum(v["n"] for v in d["by"]["difficulty"].values()) == 5
  for key, completions in (("greedy", 5), ("sampled", 5 * K)):
    t = d["throughput"][key]
    assert t["tokens"] > 0 and t["tok_per_s"] > 0
    # Every decoded row runs to its chunk's longest completion: work >= kept tokens.
    assert t["tokens"] <= t["row_steps"] <= completions * MAX_NEW * 4


@pytest.mark.integration   # the module's CLI run: end to end
def test_completions_verify_to_the_reported_counts(run_dir):
  """Re-checking every saved completion reproduces the counts, lengths and truncation flags."""
  out, _ = run_dir
  results, records = _load(out)
  d = results["datasets"]["word_problems?difficulty=1-2"]
  all_samples = [s for r in records for s in r["samples"]]
  assert len(all_samples) == 5 * K
  for comp, r in [(r["greedy"], r) for r in records] + [(s, r) for r in records
                                                         for s in r["samples"]]:
    assert comp["correct"] == verify.is_correct(comp["text"], r["answer"])
    assert 0 < comp["tokens"] <= MAX_NEW
    assert not comp["truncated"] or comp["tokens"] == MAX_NEW
  assert d["sampled"]["num_correct"] == sum(s["correct"] for s in all_samples)
  assert d["sampled"]["truncation_rate"] == pytest.approx(
      sum(s["truncated"] for s in all_samples) / (5 * K))


@pytest.mark.integration   # the module's CLI run: end to end
def test_markdown_table_written_and_printed(run_dir):
  out, stdout = run_dir
  results, _ = _load(out)
  md = (out / "results.md").read_text(encoding="utf-8")
  assert md in stdout
  g = results["datasets"]["word_problems?difficulty=1-2"]["greedy"]
  row = (f"| word_problems?difficulty=1-2 | 5 | {100 * g['accuracy']:.1f} | "
         f"{g['tokens']['mean']:.1f} |")
  assert row in md
  assert f"| mean@{K} % | pass@{K} % |" in md
  assert "by difficulty" in md


def test_bad_data_specs_name_the_problem():
  """The CLI loads every dataset before the model, so these fail in a second, not a minute."""
  with pytest.raises(KeyError, match="no_such_task"):
    runner.load_examples("task:no_such_task", 3, 0)
  with pytest.raises(ValueError, match="apply to tasks"):
    runner.load_examples("mawps:/x.jsonl?difficulty=2", 3, 0)


@pytest.mark.integration   # the module's CLI run: end to end
def test_padding_the_last_chunk_changes_no_result(run_dir):
  """The CLI ran 5 examples in chunks of 4 (last chunk padded); one chunk of 5 agrees."""
  out, _ = run_dir
  _, records = _load(out)
  policy = runner.load_policy("tiny")
  examples = runner.load_examples("task:word_problems?difficulty=1-2", 5, 0)
  settings = runner.EvalSettings(max_new_tokens=MAX_NEW, batch_size=5, instruction="brief")
  with Verifier(num_workers=1) as verifier:
    unpadded, _ = runner.evaluate_dataset(policy, examples, settings, verifier, progress=False)
  assert [r["greedy"] for r in unpadded] == [r["greedy"] for r in records]
