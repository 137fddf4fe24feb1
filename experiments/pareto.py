r"""Compares evaluation runs: a Markdown table and the accuracy-vs-tokens Pareto plot.

    python experiments/pareto.py --runs=/tmp/eval_base,/tmp/eval_grpo --names=base,grpo \
        --out=pareto.png [--datasets=gsm8k_test,mawps_test] [--section=greedy|sampled]

Each run is a `python -m concise_jax.eval` output (its `--out_dir`, or the `results.json` in
it). Each dataset the runs share gets one panel: one point per run at (mean generated tokens,
accuracy), with the Pareto front (no other run both shorter and more accurate) drawn as a step
line. Up and to the left is better, which is the picture efficient-reasoning papers compare
methods on.
"""
import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from concise_jax.eval import metrics, report  # pylint: disable=wrong-import-position


def default_name(path: str) -> str:
  """The run's directory name (`/x/eval_base/results.json` → `eval_base`)."""
  path = path.rstrip("/")
  if path.endswith(".json"):
    path = os.path.dirname(path)
  return os.path.basename(path) or path


def shared_datasets(runs: list[dict]) -> list[str]:
  """Dataset labels present in every run, in the first run's order."""
  return [d for d in runs[0]["datasets"] if all(d in r["datasets"] for r in runs)]


def point(run: dict, dataset: str, section: str) -> dict | None:
  """(accuracy, mean tokens, acc/1k tokens, truncation) of one run on one dataset, or None."""
  d = run["datasets"][dataset].get(section)
  if d is None:
    return None
  acc = d["accuracy"] if section == "greedy" else d["mean_at_k"]
  return {"accuracy": acc, "tokens": d["tokens"]["mean"],
          "acc_per_1k_tokens": d["acc_per_1k_tokens"], "truncation_rate": d["truncation_rate"]}


def comparison(runs: list[dict], names: list[str], datasets: list[str],
               section: str) -> tuple[str, dict]:
  """The Markdown comparison table and {dataset: {"points", "front"}} for plotting."""
  rows, panels = [], {}
  for dataset in datasets:
    pts = [(name, point(run, dataset, section)) for name, run in zip(names, runs)]
    pts = [(name, p) for name, p in pts if p is not None]
    front = metrics.pareto_front([p["tokens"] for _, p in pts], [p["accuracy"] for _, p in pts])
    panels[dataset] = {"points": pts, "front": front}
    for i, (name, p) in enumerate(pts):
      rows.append(f"| {dataset} | {name} | {100 * p['accuracy']:.1f} | {p['tokens']:.1f} | "
                  f"{p['acc_per_1k_tokens']:.2f} | {100 * p['truncation_rate']:.1f} | "
                  f"{'yes' if i in front else ''} |")
  header = ["| data | run | acc % | mean tok | acc/1k tok | trunc % | Pareto |",
            "|---|---|---|---|---|---|---|"]
  return "\n".join(header + rows), panels


def plot(panels: dict, section: str, out: str) -> None:
  """One panel per dataset: run points, names, and the Pareto front as a step line."""
  n = len(panels)
  cols = min(n, 3)
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
  for ax, (dataset, panel) in zip(axes.flat, panels.items()):
    pts, front = panel["points"], panel["front"]
    xs = [p["tokens"] for _, p in pts]
    ys = [100 * p["accuracy"] for _, p in pts]
    ax.scatter(xs, ys, s=36, color="tab:gray", zorder=2, label="run")
    ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=70, facecolors="none",
               edgecolors="tab:red", linewidths=1.8, zorder=3, label="Pareto front")
    ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="tab:red",
            linewidth=1.2, zorder=1)
    for (name, _), x, y in zip(pts, xs, ys):
      ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_title(dataset, fontsize=10)
    ax.set_xlabel("mean generated tokens")
    ax.set_ylabel("greedy accuracy (%)" if section == "greedy" else "mean@k accuracy (%)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.15)
  for ax in list(axes.flat)[n:]:
    ax.set_visible(False)
  axes.flat[0].legend(fontsize=8, loc="best")
  fig.suptitle("Accuracy vs generated tokens (up-left is better)", fontsize=11)
  fig.tight_layout()
  fig.savefig(out, dpi=120)
  plt.close(fig)


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--runs", required=True, help="comma-separated run dirs or results.json")
  parser.add_argument("--names", default="", help="comma-separated labels (default: dir names)")
  parser.add_argument("--datasets", default="", help="dataset labels (default: all shared)")
  parser.add_argument("--section", default="greedy", choices=("greedy", "sampled"))
  parser.add_argument("--out", default="pareto.png", help="PNG path")
  return parser.parse_args(argv)


def main(argv: list[str]) -> str:
  """Prints the comparison table, writes the plot, and returns the table."""
  args = parse_args(argv)
  paths = [p for p in args.runs.split(",") if p]
  names = [n for n in args.names.split(",") if n] or [default_name(p) for p in paths]
  if len(names) != len(paths):
    raise SystemExit(f"{len(paths)} runs but {len(names)} names")
  runs = [report.load(p) for p in paths]
  datasets = [d for d in args.datasets.split(",") if d] or shared_datasets(runs)
  if not datasets:
    raise SystemExit("the runs share no dataset")
  table, panels = comparison(runs, names, datasets, args.section)
  plot(panels, args.section, args.out)
  print(table)
  print(f"wrote {args.out}")
  return table


if __name__ == "__main__":
  main(sys.argv[1:])
