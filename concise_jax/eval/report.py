"""Evaluation results as one JSON document and Markdown tables.

`build_results` turns per-dataset records into the JSON layout below; `markdown` renders it.
Both are pure (no I/O); `write` saves `results.json`, `results.md` and `completions.jsonl`.

    {"config": {...flags...},
     "datasets": {label: {"spec", "n", "greedy"?, "sampled"?, "by": {field: {value: summary}},
                          "throughput": {"greedy"?|"sampled"?: {...}}}},
     "overall": {"n", "greedy"?, "sampled"?}}          # every dataset's records pooled
"""
import json
import math
import os
from collections.abc import Mapping, Sequence

from concise_jax.eval import metrics


def dataset_result(spec: str, records: Sequence[Mapping], throughput: Mapping) -> dict:
  """Summary, per-difficulty/subject breakdowns and throughput of one dataset."""
  return {"spec": spec, **metrics.summarize(records), "by": metrics.breakdowns(records),
          "throughput": dict(throughput)}


def _json_safe(x):
  """NaN (an empty group's mean) becomes null: strict JSON readers reject NaN."""
  if isinstance(x, float) and math.isnan(x):
    return None
  if isinstance(x, dict):
    return {k: _json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_json_safe(v) for v in x]
  return x


def build_results(config: Mapping, per_dataset: Mapping[str, tuple[str, list, dict]]) -> dict:
  """The results document.

  Args:
    config: the run's settings (flags), stored as given.
    per_dataset: label → (spec, records, throughput) in evaluation order.
  """
  datasets = {label: dataset_result(spec, records, throughput)
              for label, (spec, records, throughput) in per_dataset.items()}
  pooled = [r for _, records, _ in per_dataset.values() for r in records]
  return {"config": dict(config), "datasets": datasets, "overall": metrics.summarize(pooled)}


# --------------------------------------------------------------------------- markdown

def _pct(x) -> str:
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _num(x, digits: int = 1) -> str:
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _row_cells(summary: Mapping, section: str) -> list[str]:
  """Cells shared by the main and breakdown tables for the `greedy` or `sampled` section."""
  s = summary[section]
  acc = s["accuracy"] if section == "greedy" else s["mean_at_k"]
  cells = [_pct(acc)]
  if section == "sampled":
    cells.append(_pct(s["pass_at_k"][str(s["k"])]))
  tok = s["tokens"]
  return cells + [_num(tok["mean"]), _num(tok["median"], 0), _num(tok["p90"], 0),
                  _num(s["acc_per_1k_tokens"], 2), _pct(s["truncation_rate"]),
                  _num(s["reflections_per_completion"], 2)]


def _header(section: str, k: int | None) -> list[str]:
  acc = ["greedy acc %"] if section == "greedy" else [f"mean@{k} %", f"pass@{k} %"]
  return acc + ["mean tok", "median tok", "p90 tok", "acc/1k tok", "trunc %", "reflect/compl"]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _sections(results: Mapping) -> list[str]:
  first = next(iter(results["datasets"].values()), {})
  return [s for s in ("greedy", "sampled") if s in first]


def _k(results: Mapping) -> int | None:
  for d in results["datasets"].values():
    if "sampled" in d:
      return d["sampled"]["k"]
  return None


def main_table(results: Mapping, section: str) -> str:
  """One row per dataset (plus `all` when there are several), with throughput."""
  header = ["data", "n"] + _header(section, _k(results)) + ["tok/s"]
  rows = []
  for label, d in results["datasets"].items():
    tps = d["throughput"].get(section, {})
    steady = tps.get("tok_per_s_steady")
    if steady is not None:
      rate = _num(steady)
    else:
      rate = _num(tps["tok_per_s"]) + "*" if tps else "–"
    rows.append([label, str(d["n"])] + _row_cells(d, section) + [rate])
  if len(results["datasets"]) > 1 and results.get("overall"):
    rows.append(["**all**", str(results["overall"]["n"])]
                + _row_cells(results["overall"], section) + [""])
  return _table(header, rows)


def breakdown_table(label: str, d: Mapping, field: str, section: str, k: int | None) -> str:
  header = [field, "n"] + _header(section, k)
  rows = [[value, str(s["n"])] + _row_cells(s, section) for value, s in d["by"][field].items()]
  return f"**{label}** by {field}\n\n" + _table(header, rows)


def markdown(results: Mapping) -> str:
  """The main table per pass, then one breakdown table per dataset and field.

  `tok/s` is generated tokens per second of wall time, excluding the first (compiling) chunk
  when the dataset has more than one; `*` marks a single-chunk rate, which includes it.
  """
  parts = [f"Checkpoint `{results['config'].get('checkpoint', '?')}`"]
  k = _k(results)
  for section in _sections(results):
    title = "Greedy (pass@1)" if section == "greedy" else f"Sampled (k={k})"
    parts.append(f"### {title}\n\n" + main_table(results, section)
                 + "\n\ntok/s: generated tokens per second, first (compiling) chunk excluded; "
                 "* = a single chunk, so its compile (if any) is included.")
  for section in _sections(results):
    for label, d in results["datasets"].items():
      for field in d["by"]:
        if len(d["by"][field]) > 1:
          parts.append(f"{section}: " + breakdown_table(label, d, field, section, k))
  return "\n\n".join(parts) + "\n"


def merge(documents: Sequence[Mapping]) -> dict:
  """One document with every dataset of several runs (e.g. one checkpoint, several commands).

  Records are not kept in results.json, so nothing is pooled: the merged document has no
  `overall` section and its tables no `all` row. Labels must be distinct across documents.
  """
  datasets = {}
  for doc in documents:
    for label, d in doc["datasets"].items():
      if label in datasets:
        raise ValueError(f"dataset {label!r} appears in more than one document")
      datasets[label] = d
  return {"config": dict(documents[0]["config"]) if documents else {}, "datasets": datasets}


def load(path: str) -> dict:
  """A results document from an --out_dir or a results.json path."""
  if os.path.isdir(path):
    path = os.path.join(path, "results.json")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def write(out_dir: str, results: Mapping, records_by_dataset: Mapping[str, list]) -> list[str]:
  """Writes results.json, results.md and completions.jsonl; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name)
           for name in ("results.json", "results.md", "completions.jsonl")]
  with open(paths[0], "w", encoding="utf-8") as f:
    json.dump(_json_safe(results), f, indent=1, allow_nan=False)
  with open(paths[1], "w", encoding="utf-8") as f:
    f.write(markdown(results))
  with open(paths[2], "w", encoding="utf-8") as f:
    for label, records in records_by_dataset.items():
      for r in records:
        f.write(json.dumps({"dataset": label, **r}) + "\n")
  return paths

