"""experiments/study_report.py: the study table from run summaries, by hand-computed numbers."""
import json
import math

from experiments import study_report


def _evaluation(acc, n, tokens, trunc, section="sampled"):
  key = "mean_at_k" if section == "sampled" else "accuracy"
  return {f"eval/{section}/{key}": acc, f"eval/{section}/num_completions": n,
          f"eval/{section}/tokens/mean": tokens, f"eval/{section}/truncation_rate": trunc,
          f"eval/{section}/acc_per_1k_tokens": 1000 * acc / tokens}


def _summary(run, seed, final, rollout_acc, wall_s=1800.0, device=None):
  steps = list(range(len(rollout_acc)))
  return {"study": "s", "run": run, "seed": seed, "steps": steps[-1],
          **({"platform": {"device_kind": device}} if device else {}),
          "final": final, "eval_step0": _evaluation(0.25, 128, 90.0, 0.2),
          "curves": {"step": steps, "rollout/accuracy": rollout_acc,
                     "len/all/mean": [90.0 - 5 * i for i in steps],
                     "rollout/truncation_rate": [0.1] * len(steps)},
          "wall_s": wall_s}


def _write(tmp_path, summaries):
  d = tmp_path / "s"
  d.mkdir()
  for s in summaries:
    (d / f"{s['run']}-s{s['seed']}.json").write_text(json.dumps(s))
  return tmp_path


def test_table_averages_seeds_pools_the_error_and_flags_a_collapse(tmp_path):
  root = _write(tmp_path, [
      _summary("kimi", 0, _evaluation(0.50, 128, 40.0, 0.0), [0.2, 0.3, 0.4, 0.4, 0.5, 0.5],
               device="NVIDIA H200"),
      _summary("kimi", 1, _evaluation(0.30, 128, 60.0, 0.1), [0.2, 0.3, 0.4, 0.4, 0.5, 0.5],
               device="cpu"),
      # A naive penalty that collapses: the last third's accuracy is under half the first's.
      _summary("naive", 0, _evaluation(0.05, 128, 5.0, 0.0), [0.4, 0.4, 0.3, 0.2, 0.1, 0.1]),
      _summary("grpo", 0, {"eval/greedy/accuracy": None}, [0.1, 0.2, None]),  # no evaluation
  ])
  text = study_report.main(["--study=s", f"--results={root}"])
  rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
          for line in text.splitlines()[2:]}
  assert set(rows) == {"kimi", "naive"}       # a run without a held-out evaluation has no row
  kimi = rows["kimi"]
  se = math.sqrt(0.4 * 0.6 / 256)              # pooled over both seeds' 2 × 128 completions
  assert kimi[1] == "0,1" and kimi[2] == "5"
  assert kimi[3] == f"40.0 ± {100 * se:.1f} (50.0 / 30.0)"
  assert kimi[4:9] == ["25.0", "50.0", "90.0", "8.75", "5.0"]   # 1000·(0.5/40 + 0.3/60)/2
  assert kimi[9] == "25.0 → 50.0" and kimi[10] == "0/2" and kimi[12] == "1.00"
  naive = rows["naive"]
  assert kimi[13] == "NVIDIA H200 / cpu"        # seeds that ran on different platforms
  assert kimi[14] == "+15.0"                     # (0.50 - 0.25 + 0.30 - 0.25) / 2
  assert naive[9] == "40.0 → 10.0" and naive[10] == "1/1" and naive[13] == "-"   # unrecorded
  assert naive[14] == "-20.0"
  # Front over (tokens, acc): naive (5, 0.05) and kimi (50, 0.40) are both non-dominated.
  assert kimi[11] == "yes" and naive[11] == "yes"
  for name in ("table.md", "pareto.png", "curves.png"):
    assert (root / "s" / name).stat().st_size > 0


def test_stability_needs_three_points_and_a_nonzero_start():
  assert not study_report.stability({"rollout/accuracy": [0.5, 0.0]})["collapsed"]
  assert not study_report.stability({"rollout/accuracy": [0.0, 0.0, 0.0]})["collapsed"]
  s = study_report.stability({"rollout/accuracy": [0.5, 0.5, 0.6, 0.2, 0.25, 0.25]})
  assert (s["first"], s["last"]) == (0.5, 0.25) and not s["collapsed"]   # exactly half: kept
