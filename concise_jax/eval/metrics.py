"""Pure evaluation metrics over per-example records: accuracy, pass@k, lengths, reflections.

Everything here is a function of plain Python / numpy values, so it can be tested by hand and
reused on any saved completions. Lengths are always token counts from the sampler (never
characters), counting every generated token including the end-of-sequence token.

A *record* is the per-example dict the runner writes (see `runner.py`):

    {"id", "source", "difficulty", "subject" (optional), "answer",
     "greedy":  {"text", "tokens", "correct", "truncated"}          # absent without greedy
     "samples": [{"text", "tokens", "correct", "truncated"}, ...]}  # absent when k = 0
"""
import collections
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

# Phrases that mark self-reflection in a reasoning trace (the "overthinking" signal papers count).
REFLECTION_PHRASES = ("wait", "alternatively", "let me check", "let me verify", "double-check",
                      "hmm")


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k estimator: the chance a random k-subset of n samples holds a correct one.

  pass@k = 1 - C(n - c, k) / C(n, k) (Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code", eq. 1). The binomials overflow floats for large n, so we use the product
  form C(n - c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i), which only multiplies numbers
  in [0, 1].

  Args:
    n: samples drawn for the problem.
    c: how many of them are correct (0 <= c <= n).
    k: subset size (1 <= k <= n).

  Returns:
    A probability in [0, 1]; exactly 1.0 when every k-subset must contain a correct sample.
  """
  if not 0 <= c <= n or not 1 <= k <= n:
    raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
  if n - c < k:
    return 1.0
  return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def pass_at_k_ladder(k: int) -> list[int]:
  """The k values to report for n = k samples: 1, 2, 4, ... below k, and k itself."""
  if k < 1:
    return []
  ladder = []
  while (1 << len(ladder)) < k:
    ladder.append(1 << len(ladder))
  return ladder + [k]


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
  """Mean, median, 90th percentile and max of token counts; NaN for an empty set.

  Percentiles use numpy's default linear interpolation between order statistics, so the p90 of
  [1, ..., 10] is 9.1.
  """
  x = np.asarray(lengths, np.float64)
  if x.size == 0:
    return {"mean": math.nan, "median": math.nan, "p90": math.nan, "max": math.nan}
  return {"mean": float(x.mean()), "median": float(np.median(x)),
          "p90": float(np.percentile(x, 90)), "max": float(x.max())}


def accuracy_per_1k_tokens(num_correct: int, total_tokens: int) -> float:
  """Correct answers per 1,000 generated tokens: `num_correct / total_tokens * 1000`.

  `total_tokens` is the sum of completion lengths over *all* completions scored, correct or not
  and truncated ones included (prompt tokens excluded). Equivalently accuracy / mean tokens *
  1000: it rewards a policy both for being right and for being short, which is the trade-off
  concise-reasoning methods move along. 0.0 when nothing was generated.
  """
  return 1000.0 * num_correct / total_tokens if total_tokens > 0 else 0.0


def _phrase_pattern(phrase: str) -> re.Pattern:
  """Whole-word, case-insensitive, any whitespace between words (`Let  me\\ncheck` counts)."""
  words = [re.escape(w) for w in phrase.split()]
  return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", re.IGNORECASE)


_PATTERNS: dict[str, re.Pattern] = {}


def reflection_counts(text: str,
                      phrases: Sequence[str] = REFLECTION_PHRASES) -> dict[str, int]:
  """How often each reflection phrase occurs in `text` as whole words, ignoring case.

  "Wait," and "WAIT" count for "wait"; "awaited" and "waiting" do not (a different meaning).
  """
  counts = {}
  for phrase in phrases:
    pattern = _PATTERNS.setdefault(phrase, _phrase_pattern(phrase))
    counts[phrase] = len(pattern.findall(text))
  return counts


def _completion_stats(completions: Sequence[Mapping]) -> dict[str, float]:
  """Accuracy, lengths, acc/1k tokens, truncation and reflections over a flat completion list."""
  lengths = [c["tokens"] for c in completions]
  correct = sum(bool(c["correct"]) for c in completions)
  n = len(completions)
  refl = collections.Counter()
  for c in completions:
    refl.update(reflection_counts(c["text"]))
  out = {"accuracy": correct / n if n else math.nan, "num_correct": correct,
         "num_completions": n, "total_tokens": int(sum(lengths)),
         "acc_per_1k_tokens": accuracy_per_1k_tokens(correct, int(sum(lengths))),
         "truncation_rate": sum(bool(c["truncated"]) for c in completions) / n if n else math.nan,
         "reflections_per_completion": sum(refl.values()) / n if n else math.nan,
         "reflections": {p: refl[p] for p in REFLECTION_PHRASES}}
  out["tokens"] = length_stats(lengths)
  return out


def greedy_summary(records: Sequence[Mapping]) -> dict:
  """Greedy pass@1 and token statistics of one greedy completion per example."""
  return _completion_stats([r["greedy"] for r in records])


def sampled_summary(records: Sequence[Mapping]) -> dict:
  """mean@k (mean accuracy over all samples), unbiased pass@k ladder, and sample token stats.

  Every record must hold the same number of samples k; mean@k is then both the mean over
  examples of c_i / k and pass@1 under sampling.
  """
  ks = {len(r["samples"]) for r in records}
  if len(ks) != 1:
    raise ValueError(f"records hold different sample counts {sorted(ks)}")
  k = ks.pop()
  out = _completion_stats([s for r in records for s in r["samples"]])
  out["k"] = k
  out["mean_at_k"] = out.pop("accuracy")
  counts = [sum(bool(s["correct"]) for s in r["samples"]) for r in records]
  out["pass_at_k"] = {str(j): float(np.mean([pass_at_k(k, c, j) for c in counts]))
                      for j in pass_at_k_ladder(k)}
  return out


def summarize(records: Sequence[Mapping]) -> dict:
  """`{"n", "greedy"?, "sampled"?}` for a set of records (sections present when the data is)."""
  out: dict = {"n": len(records)}
  if records and "greedy" in records[0]:
    out["greedy"] = greedy_summary(records)
  if records and records[0].get("samples"):
    out["sampled"] = sampled_summary(records)
  return out


def group_by(records: Iterable[Mapping], key: Callable[[Mapping], object]) -> dict[str, list]:
  """Records split by `key(record)`, keys as strings in natural order (2 before 10)."""
  groups = collections.defaultdict(list)
  for r in records:
    groups[str(key(r))].append(r)
  return {g: groups[g] for g in sorted(groups, key=_natural_key)}


def _natural_key(label: str):
  return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


# Fields a breakdown may use; a field is reported only when some record has it.
BREAKDOWN_FIELDS = ("difficulty", "subject")


def breakdowns(records: Sequence[Mapping]) -> dict[str, dict[str, dict]]:
  """`{field: {value: summarize(group)}}` for every breakdown field present in the records."""
  out = {}
  for field in BREAKDOWN_FIELDS:
    if any(r.get(field) is not None for r in records):
      groups = group_by(records, lambda r, f=field: r.get(f, "unknown"))
      out[field] = {value: summarize(group) for value, group in groups.items()}
  return out


def pareto_front(tokens: Sequence[float], accuracy: Sequence[float]) -> list[int]:
  """Indices of the runs no other run beats on both axes (fewer tokens, higher accuracy).

  Run j dominates run i when tokens_j <= tokens_i and accuracy_j >= accuracy_i with at least one
  strict; the front is every non-dominated run (ties both stay), ordered by tokens.
  """
  points = list(zip(tokens, accuracy))
  front = [i for i, (t, a) in enumerate(points)
           if not any(tj <= t and aj >= a and (tj < t or aj > a) for tj, aj in points)]
  return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def flatten(summary: Mapping, prefix: str = "") -> dict[str, float]:
  """Numeric leaves of a nested summary under `/`-joined names: `{"greedy": {"tokens":
  {"mean": 3.0}}}` → `{"greedy/tokens/mean": 3.0}` (how training logs `summarize`)."""
  out = {}
  for key, value in summary.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      out.update(flatten(value, name + "/"))
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
      out[name] = float(value)
  return out
