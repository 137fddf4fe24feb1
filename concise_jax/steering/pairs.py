"""Concise/verbose answer pairs to the same problem, from which the steering vector is taken.

Two sources:
  * the model's own samples (our design): sample G answers per problem, keep the correct ones,
    and pair the shortest correct answer (concise) with the longest (verbose). ASC (arXiv
    2507.04742) instead pairs the model's own verbose answer with a stronger model's
    math-notation answer and filters neither for correctness.
  * a user JSONL file with one {"problem", "concise", "verbose"} object per line.
"""
import dataclasses
import json
from collections.abc import Sequence

import jax
import numpy as np

from concise_jax import data, rollout, verify


@dataclasses.dataclass(frozen=True)
class Pair:
  """Two answers to one problem; `problem` is the user turn exactly as the model saw it."""
  problem: str
  concise: str
  verbose: str


def from_jsonl(path: str) -> list[Pair]:
  """Reads {"problem", "concise", "verbose"} lines (blank lines skipped)."""
  pairs = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      row = json.loads(line)
      missing = {"problem", "concise", "verbose"} - set(row)
      if missing:
        raise ValueError(f"{path}:{n} lacks {sorted(missing)}")
      pairs.append(Pair(row["problem"], row["concise"], row["verbose"]))
  return pairs


def to_jsonl(pairs: Sequence[Pair], path: str) -> None:
  with open(path, "w", encoding="utf-8") as f:
    for p in pairs:
      f.write(json.dumps(dataclasses.asdict(p)) + "\n")


def select_pair(problem: str, texts: Sequence[str], lengths: Sequence[int],
                correct: Sequence[bool], min_gap: int = 1,
                finished: Sequence[bool] | None = None) -> Pair | None:
  """Shortest vs longest correct (and, given `finished`, ended) answer among one problem's
  samples.

  A truncated answer can pass a lenient last-number check while ending mid-sentence, which
  would make its last token a poor "verbose" end state; pass `finished` to drop those.
  Returns None when fewer than two answers qualify or their token lengths differ by less than
  `min_gap` (no contrast). Ties keep the earliest sample, so the choice is deterministic.
  """
  ok = [i for i, c in enumerate(correct) if c and (finished is None or finished[i])]
  if len(ok) < 2:
    return None
  short = min(ok, key=lambda i: (lengths[i], i))
  long = max(ok, key=lambda i: (lengths[i], -i))
  if lengths[long] - lengths[short] < min_gap:
    return None
  return Pair(problem, texts[short], texts[long])


def from_own_samples(cfg, params, tokenizer, examples: Sequence[data.Example], key: jax.Array,
                     sp: rollout.SamplingParams, check, *, num_samples: int = 8,
                     instruction: str = "none", system: str | None = None,
                     batch_prompts: int = 8, min_gap: int = 1,
                     require_finished: bool = True) -> list[Pair]:
  """Samples `num_samples` answers per example and keeps one pair per example that has one.

  Args:
    cfg, params, tokenizer: the model (pairs come from the same model that is steered).
    examples: problems with references.
    key: sampling key (folded per batch).
    sp: sampling settings (temperature > 0, else all samples are equal).
    check: `(texts, references, kinds) -> list[bool]`, e.g. `rollout_step.check_in_process`.
    num_samples: G answers per problem.
    instruction, system: prompt format; the pair's `problem` is the formatted user turn.
    batch_prompts: prompts per sampler call (the last batch is padded by repetition).
    min_gap: minimum token-length difference between the two answers.
    require_finished: only answers that ended (EOS) within the budget qualify.
  """
  pairs = []
  for start in range(0, len(examples), batch_prompts):
    chunk = list(examples[start:start + batch_prompts])
    real = len(chunk)
    chunk += [chunk[-1]] * (batch_prompts - real)
    prompts = [data.add_instruction(ex, instruction) for ex in chunk]
    texts, out = rollout.generate(cfg, params, tokenizer, prompts, sp,
                                  jax.random.fold_in(key, start), num_samples=num_samples,
                                  system=system)
    lengths, finished = np.asarray(out.length_b), np.asarray(out.finished_b)
    refs = [verify.reference_of(ex) for ex in chunk for _ in range(num_samples)]
    correct = check(texts, [r for r, _ in refs], [k for _, k in refs])
    for i in range(real):
      rows = slice(i * num_samples, (i + 1) * num_samples)
      pair = select_pair(prompts[i], texts[rows], lengths[rows], correct[rows], min_gap,
                         finished[rows] if require_finished else None)
      if pair is not None:
        pairs.append(pair)
  return pairs

