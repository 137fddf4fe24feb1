"""experiments/pareto.py: comparison table, Pareto membership and the PNG, from fake results."""
import json

from experiments import pareto


def _summary(acc: float, mean_tokens: float) -> dict:
  return {"accuracy": acc, "mean_at_k": acc, "tokens": {"mean": mean_tokens},
          "acc_per_1k_tokens": 1000 * acc / mean_tokens, "truncation_rate": 0.0}


def _write_run(path, points: dict) -> str:
  """A minimal results.json: dataset → (accuracy, mean tokens) for the greedy section."""
  path.mkdir()
  datasets = {name: {"greedy": _summary(a, t)} for name, (a, t) in points.items()}
  (path / "results.json").write_text(json.dumps({"config": {}, "datasets": datasets}))
  return str(path)


def test_table_marks_the_front_and_plot_is_written(tmp_path):
  runs = [
      _write_run(tmp_path / "base", {"gsm8k": (0.20, 180.0), "mawps": (0.30, 90.0)}),
      _write_run(tmp_path / "short", {"gsm8k": (0.25, 60.0), "mawps": (0.28, 40.0)}),
      _write_run(tmp_path / "long", {"gsm8k": (0.24, 300.0), "mawps": (0.35, 200.0),
                                     "extra": (0.5, 10.0)}),
  ]
  out = tmp_path / "pareto.png"
  table = pareto.main(["--runs=" + ",".join(runs), f"--out={out}"])
  rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line
          for line in table.splitlines()[2:]}
  assert set(rows) == {(d, r) for d in ("gsm8k", "mawps") for r in ("base", "short", "long")}
  # gsm8k: "short" dominates both others; mawps: every run is on the front.
  assert rows[("gsm8k", "short")].endswith("| yes |")
  assert rows[("gsm8k", "base")].endswith("|  |") and rows[("gsm8k", "long")].endswith("|  |")
  assert all(rows[("mawps", r)].endswith("| yes |") for r in ("base", "short", "long"))
  assert "| gsm8k | short | 25.0 | 60.0 | 4.17 | 0.0 | yes |" in table
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_names_and_dataset_selection(tmp_path):
  runs = [_write_run(tmp_path / "a", {"x": (0.1, 10.0), "y": (0.2, 5.0)}),
          _write_run(tmp_path / "b", {"x": (0.3, 20.0), "y": (0.1, 50.0)})]
  table = pareto.main(["--runs=" + ",".join(runs), "--names=first,second", "--datasets=y",
                       f"--out={tmp_path / 'p.png'}"])
  assert "| y | first |" in table and "| y | second |" in table and "| x |" not in table
