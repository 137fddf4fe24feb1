r"""A study's results, regenerated from its committed run summaries: table, Pareto plot, curves.

    python experiments/study_report.py --study=length_methods [--results=experiments/results]

Reads `<results>/<study>/*.json` (one per finished run and seed, written by
`python -m concise_jax.sweep`) and writes next to them `table.md`, `pareto.png` and
`curves.png`. Nothing is rerun, so the outputs follow from what is committed.

Held-out figures are the last evaluation of each run (greedy where the run evaluated greedily,
else mean@k of the sampled evaluation); the standard error is binomial over the completions,
which understates it when a prompt's samples are correlated. "Collapse" asks the question the
GRPO-λ paper (arXiv 2505.18086) raises about naive length penalties: did the training rollouts'
accuracy in the last third of the run fall below half of what it was in the first third?
"""
import argparse
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib  # pylint: disable=wrong-import-position

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from concise_jax.eval import metrics  # pylint: disable=wrong-import-position
from experiments import pareto  # pylint: disable=wrong-import-position

COLLAPSE_RATIO = 0.5     # last-third rollout accuracy below this fraction of the first third


def load_summaries(directory: str) -> list[dict]:
  """Every run summary of a study, ordered by run name then seed."""
  out = []
  for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
    with open(path, encoding="utf-8") as f:
      out.append(json.load(f))
  if not out:
    raise SystemExit(f"no run summaries (*.json) in {directory}")
  return sorted(out, key=lambda s: (s["run"], s["seed"]))


def heldout(evaluation: dict) -> dict | None:
  """(accuracy, completions, mean tokens, acc/1k tokens, truncation) of one evaluation's keys."""
  for section, acc_key in (("greedy", "accuracy"), ("sampled", "mean_at_k")):
    prefix = f"eval/{section}/"
    acc = evaluation.get(prefix + acc_key)
    if acc is not None:
      return {"section": section, "accuracy": acc,
              "n": evaluation.get(prefix + "num_completions") or 0,
              "tokens": evaluation.get(prefix + "tokens/mean"),
              "acc_per_1k_tokens": evaluation.get(prefix + "acc_per_1k_tokens"),
              "truncation_rate": evaluation.get(prefix + "truncation_rate")}
  return None


def _mean(values):
  values = [v for v in values if v is not None]
  return sum(values) / len(values) if values else None


def stability(curves: dict) -> dict:
  """Training-rollout accuracy averaged over the first and last third of the steps."""
  acc = [a for a in curves.get("rollout/accuracy", []) if a is not None]
  if len(acc) < 3:
    return {"first": _mean(acc), "last": _mean(acc), "collapsed": False}
  third = len(acc) // 3
  first, last = _mean(acc[:third]), _mean(acc[-third:])
  return {"first": first, "last": last,
          "collapsed": first > 0 and last < COLLAPSE_RATIO * first}


def method_rows(summaries: list[dict]) -> list[dict]:
  """One row per method: held-out figures averaged over its seeds, pooled standard error."""
  by_run: dict[str, list[dict]] = {}
  for s in summaries:
    by_run.setdefault(s["run"], []).append(s)
  rows = []
  for name, runs in by_run.items():
    after = [heldout(r["final"]) for r in runs]
    before = [heldout(r["eval_step0"]) for r in runs]
    after_ok = [a for a in after if a]
    if not after_ok:
      continue
    acc = _mean([a["accuracy"] for a in after_ok])
    n = sum(a["n"] for a in after_ok)
    stab = [stability(r["curves"]) for r in runs]
    rows.append({
        "method": name, "seeds": [r["seed"] for r in runs], "steps": runs[0]["steps"],
        "section": after_ok[0]["section"], "accuracy": acc,
        "stderr": math.sqrt(acc * (1 - acc) / n) if n else None,
        "seed_accuracies": [a["accuracy"] for a in after_ok],
        "tokens": _mean([a["tokens"] for a in after_ok]),
        "acc_per_1k_tokens": _mean([a["acc_per_1k_tokens"] for a in after_ok]),
        "truncation_rate": _mean([a["truncation_rate"] for a in after_ok]),
        "accuracy_before": _mean([b["accuracy"] for b in before if b]),
        "tokens_before": _mean([b["tokens"] for b in before if b]),
        "rollout_first": _mean([s["first"] for s in stab]),
        "rollout_last": _mean([s["last"] for s in stab]),
        "collapsed": sum(s["collapsed"] for s in stab),
        "wall_s": sum(r.get("wall_s", 0.0) for r in runs),
        "devices": [r.get("platform", {}).get("device_kind", "-") for r in runs],
        # Each seed against its own step-0 evaluation: seeds start from different samples.
        "gain": _mean([a["accuracy"] - b["accuracy"] for a, b in zip(after, before) if a and b])})
  return rows


def _pct(x, digits=1):
  return "-" if x is None else f"{100 * x:.{digits}f}"


def _signed_pct(x):
  return "-" if x is None else f"{100 * x:+.1f}"


def _num(x, digits=1):
  return "-" if x is None else f"{x:.{digits}f}"


def _devices(kinds: list[str]) -> str:
  """One device kind, or each seed's when they differ (GPU and CPU runs differ in the last
  bits, so a seed's trajectory depends on where it ran)."""
  return kinds[0] if len(set(kinds)) == 1 else " / ".join(kinds)


def table(rows: list[dict]) -> str:
  """The Markdown results table (one line per method) with the Pareto-front marks."""
  front = set(metrics.pareto_front([r["tokens"] for r in rows], [r["accuracy"] for r in rows]))
  lines = [
      "| method | seeds | steps | held-out acc % ± s.e. | step 0 acc % | mean tokens | step 0 "
      "tokens | correct / 1k tokens | truncated % | rollout acc first → last third % | "
      "collapsed runs | Pareto | wall h | device | acc gain over own step 0, points |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"]
  for i, r in enumerate(rows):
    seeds = ",".join(str(s) for s in r["seeds"])
    acc = f"{_pct(r['accuracy'])} ± {_pct(r['stderr'])}"
    if len(r["seed_accuracies"]) > 1:
      acc += " (" + " / ".join(_pct(a) for a in r["seed_accuracies"]) + ")"
    lines.append(
        f"| {r['method']} | {seeds} | {r['steps']} | {acc} | {_pct(r['accuracy_before'])} | "
        f"{_num(r['tokens'])} | {_num(r['tokens_before'])} | {_num(r['acc_per_1k_tokens'], 2)} "
        f"| {_pct(r['truncation_rate'])} | {_pct(r['rollout_first'])} → "
        f"{_pct(r['rollout_last'])} | {r['collapsed']}/{len(r['seeds'])} | "
        f"{'yes' if i in front else ''} | {r['wall_s'] / 3600:.2f} | {_devices(r['devices'])} | "
        f"{_signed_pct(r['gain'])} |")
  return "\n".join(lines)


def plot_pareto(rows: list[dict], study: str, out: str) -> None:
  """Held-out accuracy vs mean tokens per method, the step-0 model as `base`, and the front."""
  points = [(r["method"], {"accuracy": r["accuracy"], "tokens": r["tokens"]}) for r in rows]
  base = [r for r in rows if r["accuracy_before"] is not None and r["tokens_before"]]
  if base:
    points.append(("base (step 0)", {"accuracy": base[0]["accuracy_before"],
                                     "tokens": base[0]["tokens_before"]}))
  front = metrics.pareto_front([p["tokens"] for _, p in points],
                               [p["accuracy"] for _, p in points])
  section = rows[0]["section"] if rows else "greedy"
  pareto.plot({study: {"points": points, "front": front}}, section, out)


def plot_curves(summaries: list[dict], out: str) -> None:
  """Per-run training curves over steps: rollout accuracy, mean length, truncation."""
  panels = (("rollout/accuracy", "rollout accuracy (%)", 100.0),
            ("len/all/mean", "mean rollout tokens", 1.0),
            ("rollout/truncation_rate", "truncated rollouts (%)", 100.0))
  fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
  for ax, (key, label, scale) in zip(axes.flat, panels):
    for s in summaries:
      pts = [(step, scale * v) for step, v in zip(s["curves"]["step"], s["curves"].get(key, []))
             if v is not None]
      if pts:
        ax.plot(*zip(*pts), linewidth=1.2, label=f"{s['run']}-s{s['seed']}")
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes.flat[0].legend(fontsize=7, ncol=2, loc="best")
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)


def main(argv: list[str]) -> str:
  """Writes table.md, pareto.png and curves.png for the study; prints and returns the table."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--study", required=True, help="study name (the sweep file's `study`)")
  parser.add_argument("--results", default="experiments/results", help="summaries' root")
  args = parser.parse_args(argv)
  directory = os.path.join(args.results, args.study)
  summaries = load_summaries(directory)
  rows = method_rows(summaries)
  text = table(rows)
  with open(os.path.join(directory, "table.md"), "w", encoding="utf-8") as f:
    f.write(f"# {args.study}: {len(summaries)} finished runs\n\n"
            f"Regenerate: `python experiments/study_report.py --study={args.study}`\n\n"
            f"{text}\n")
  plot_pareto(rows, args.study, os.path.join(directory, "pareto.png"))
  plot_curves(summaries, os.path.join(directory, "curves.png"))
  print(text)
  print(f"wrote {directory}/table.md, pareto.png, curves.png")
  return text


if __name__ == "__main__":
  main(sys.argv[1:])
