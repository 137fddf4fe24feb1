"""Per-step metrics: pure functions of host arrays, and one writer for all outputs.

The writer sends every scalar to TensorBoard event files (`workdir/tb`) and to
`workdir/metrics.jsonl` (one JSON object per step, for notebooks and tests), prints a short
console line, and drives a tqdm progress bar. Only process 0 writes.
"""
import json
import math
import os
from collections.abc import Mapping

import jax
import numpy as np
import tqdm


def _length_stats(prefix: str, length_b: np.ndarray) -> dict[str, float]:
  """Mean and p90 of a set of lengths; NaN when the set is empty (shown as such, not as 0)."""
  if length_b.size == 0:
    return {f"{prefix}/mean": math.nan, f"{prefix}/p90": math.nan}
  return {f"{prefix}/mean": float(length_b.mean()),
          f"{prefix}/p90": float(np.percentile(length_b, 90))}


def rollout_metrics(correct_b, length_b, truncated_b, format_ok_b=None) -> dict[str, float]:
  """Accuracy, lengths (all / correct / incorrect, in tokens) and truncation of sampled answers.

  Args:
    correct_b: [B] bool raw verifier results of every sample generated this step.
    length_b: [B] completion lengths in tokens.
    truncated_b: [B] bool hit the decode budget.
    format_ok_b: optional [B] bool explicit-answer-format flags.

  Returns:
    Flat dict: rollout/accuracy, rollout/truncation_rate, len/{all,correct,incorrect}/{mean,p90},
    rollout/correct_per_1k_tokens (the concise-reasoning objective), rollout/format_ok.
  """
  correct_b = np.asarray(correct_b, bool)
  length_b = np.asarray(length_b, np.float64)
  tokens = max(float(length_b.sum()), 1.0)
  out = {"rollout/accuracy": float(correct_b.mean()) if correct_b.size else math.nan,
         "rollout/truncation_rate": float(np.mean(truncated_b)) if correct_b.size else math.nan,
         "rollout/correct_per_1k_tokens": 1000.0 * float(correct_b.sum()) / tokens}
  out.update(_length_stats("len/all", length_b))
  out.update(_length_stats("len/correct", length_b[correct_b]))
  out.update(_length_stats("len/incorrect", length_b[~correct_b]))
  if format_ok_b is not None:
    out["rollout/format_ok"] = float(np.mean(format_ok_b))
  return out


def reward_metrics(rewards_b, keep_b) -> dict[str, float]:
  """Mean / std of the shaped reward over the samples that enter the update."""
  r = np.asarray(rewards_b, np.float64)[np.asarray(keep_b, bool)]
  if r.size == 0:
    return {"reward/mean": math.nan, "reward/std": math.nan}
  return {"reward/mean": float(r.mean()), "reward/std": float(r.std())}


def to_floats(metrics: Mapping) -> dict[str, float]:
  """Device scalars → Python floats (one transfer for the whole dict)."""
  return {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}


# Console line: (metric key, label, format); missing keys are skipped.
_CONSOLE = (
    ("rollout/accuracy", "acc", "{:.3f}"),
    ("len/correct/mean", "len✓", "{:.1f}"),
    ("len/incorrect/mean", "len✗", "{:.1f}"),
    ("rollout/truncation_rate", "trunc", "{:.2f}"),
    ("reward/mean", "r", "{:.3f}"),
    ("policy/entropy", "ent", "{:.3f}"),
    ("policy/clip_frac", "clip", "{:.3f}"),
    ("loss/kl", "kl", "{:.4f}"),
    ("optim/grad_norm", "|g|", "{:.3f}"),
    ("perf/rollout_tok_s", "roll tok/s", "{:.0f}"),
    ("perf/update_tok_s", "upd tok/s", "{:.0f}"),
    ("perf/rollout_s", "roll s", "{:.0f}"),
    ("perf/update_s", "upd s", "{:.0f}"),
    ("eval/rollout/accuracy", "EVAL acc", "{:.3f}"),
    ("eval/len/all/mean", "EVAL len", "{:.1f}"),
)


def console_line(step: int, metrics: Mapping[str, float]) -> str:
  """`step 12 | acc 0.41 | len✓ 30.1 | ...`: the few numbers worth watching live."""
  parts = [f"step {step}"]
  for key, label, fmt in _CONSOLE:
    if key in metrics:
      parts.append(f"{label} {fmt.format(metrics[key])}")
  return " | ".join(parts)


class MetricsWriter:
  """TensorBoard event files + metrics.jsonl + console line + progress bar."""

  def __init__(self, workdir: str, *, total_steps: int, initial_step: int = 0,
               log_every: int = 1):
    self._active = jax.process_index() == 0
    self._log_every = max(1, log_every)
    if not self._active:
      return
    # Imported here: tensorboardX pulls in torch when it is installed (~2 s of start-up).
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    self._tb = SummaryWriter(logdir=os.path.join(workdir, "tb"))
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step",
                          dynamic_ncols=True, leave=True)

  def write(self, step: int, metrics: Mapping[str, float], *, advance: bool = True) -> None:
    """Records the metrics of train step `step` (1-based: the number of updates done);
    `advance=False` for records that are not a train step (the step-0 evaluation)."""
    if not self._active:
      return
    for key, value in metrics.items():
      if math.isfinite(value):  # empty subsets are NaN by design; TensorBoard warns on them
        self._tb.add_scalar(key, value, step)
    # Strict JSON: NaN / inf become null.
    row = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": step, **row}) + "\n")
    self._jsonl.flush()
    self._bar.update(1 if advance else 0)
    if step % self._log_every == 0:
      self._bar.write(console_line(step, metrics))

  def message(self, text: str) -> None:
    """A line above the progress bar (warnings, halts, checkpoint notes)."""
    if self._active:
      self._bar.write(text)

  def close(self) -> None:
    if not self._active:
      return
    self._tb.close()
    self._jsonl.close()
    self._bar.close()


_EVAL_ROWS = (("accuracy", "eval/rollout/accuracy", "{:.1%}"),
              ("mean response tokens", "eval/len/all/mean", "{:.1f}"),
              ("mean tokens, correct answers", "eval/len/correct/mean", "{:.1f}"),
              ("truncated", "eval/rollout/truncation_rate", "{:.1%}"),
              ("correct per 1k tokens", "eval/rollout/correct_per_1k_tokens", "{:.2f}"))


def before_after_table(before: Mapping[str, float], after: Mapping[str, float]) -> str:
  """Markdown table of the held-out evaluation at step 0 and after training."""
  def cell(metrics, key, fmt):
    value = metrics.get(key)
    return "n/a" if value is None or not math.isfinite(value) else fmt.format(value)
  lines = ["| held-out | before | after |", "|---|---|---|"]
  lines += [f"| {label} | {cell(before, key, fmt)} | {cell(after, key, fmt)} |"
            for label, key, fmt in _EVAL_ROWS]
  return "\n".join(lines)
