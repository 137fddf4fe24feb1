"""Host-side rollout features that methods declare but `jit` cannot compute (text, verifier,
judge), served generically by need name.

    features = make_host_features(config, tokenizer, check)   # None: no selected method needs any
    batch = features(batch, texts, refs, kinds)                # fills batch.features[need]

A reward, advantage or budget declares what it reads at its registration (`needs=("repetitive",)`);
`components.needs(config)` collects the selected components' needs with the options of the
component that declared each, and this module serves them:

- `PROVIDERS`: per-row features computed on the host from the scored rollout, keyed by need
  name; `provider(batch, host, options) -> np.ndarray` (rows of this process only). A provider
  reads its knobs from the declaring component's options (LASER-DE's `ngram`, DECS's `judge`).
- `SAMPLER_FEATURES`: computed by the sampler while decoding ("entropy": the logits are already
  there, a separate forward pass would cost a full model call); `needs_entropy` sets the flag.
- `MONITORS`: periodic host routines that refresh a component's state from extra rollouts
  (LASER-D/DE's band targets on a fixed monitor set, "band_monitor"), run by the host loop.

Only what the selected components need is computed, so default runs pay nothing.
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from concise_jax import components, types
from concise_jax.eval import metrics as eval_metrics
from concise_jax.registry import Registry
from concise_jax.rewards import dot, laser, reflection
from concise_jax.verify import extract

# (completions, references, kinds) → one bool per completion (as rollout_step.CheckFn).
CheckFn = Callable[[Sequence[str], Sequence[str], Sequence[str]], list[bool]]

SAMPLER_FEATURES = ("entropy",)   # [B, T] float32 entropy of the tempered sampling distribution
THINK_END = "</think>"


def needs_entropy(config) -> bool:
  """Whether the sampler must return per-token entropy (a static SamplingParams flag)."""
  return "entropy" in components.needs(config)


# --------------------------------------------------------------------------- token text


def token_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
  """Each token decoded alone (special tokens → ""), for char ↔ token alignment.

  Byte-level BPE splits some non-ASCII characters over tokens, whose lone decodes are
  replacement characters; alignment is then approximate around such characters only.
  """
  return [tokenizer.decode([int(i)], skip_special_tokens=True) for i in ids]


def _token_starts(pieces: Sequence[str]) -> np.ndarray:
  """[L] char offset where each token's piece starts in "".join(pieces)."""
  return np.concatenate([[0], np.cumsum([len(p) for p in pieces])[:-1]]).astype(np.int64)


def _has_answer_marker(line: str) -> bool:
  line = extract.sanitize(line)
  return any(f(line) is not None for f in (extract.find_boxed, extract.find_answer_marker,
                                            extract.find_hash_answer))


def answer_phase_start(text: str) -> int:
  """Char offset where the answer phase begins: at </think> if present, else at the start of
  the last line holding an explicit final answer (\\boxed{}, `Answer:`, `####`); len(text) if
  neither (all thinking, H_answer = 0: PEAR's missing-tag rule).

  Inferred: the split for models without <think> tags (PEAR, arXiv:2510.08026, only defines
  the tag).
  """
  if THINK_END in text:
    return text.index(THINK_END)
  start = len(text)
  for line in reversed(text.splitlines(keepends=True)):
    start -= len(line)
    if _has_answer_marker(line):
      return start
  return len(text)


def think_mask_row(pieces: Sequence[str], width: int) -> np.ndarray:
  """[width] float32: 1 on tokens that start before the answer phase."""
  out = np.zeros(width, np.float32)
  if pieces:
    starts = _token_starts(pieces)
    out[:len(pieces)] = starts < answer_phase_start("".join(pieces))
  return out


def is_repetitive(ids: Sequence[int], ngram: int, min_repeats: int) -> bool:
  """True if some `ngram`-token window occurs at least `min_repeats` times (overlaps count).

  Inferred: LASER-DE's detector is not specified; this flags the loops small models fall into.
  """
  counts: dict[tuple, int] = {}
  ids = tuple(int(i) for i in ids)
  for k in range(len(ids) - ngram + 1):
    key = ids[k:k + ngram]
    counts[key] = counts.get(key, 0) + 1
    if counts[key] >= min_repeats:
      return True
  return False


def count_reflections(text: str,
                      keywords: Sequence[str] = reflection.ARLCP_KEYWORDS) -> int:
  """Total whole-word, case-insensitive keyword matches in one completion (ARLCP's count).

  Reuses `eval.metrics.reflection_counts`. Its word boundary also excludes hyphens, so
  "double-check" counts once (as ARLCP's single alternation regex does) and "check-in" counts
  zero where ARLCP's `\\b` would count one; multi-word keywords allow any whitespace between
  words. Both are rare; we keep one matcher for training and evaluation.
  """
  return sum(eval_metrics.reflection_counts(text, keywords).values())


# --------------------------------------------------------------------------- DECS judges


class RedundancyJudge(Protocol):
  """Marks redundant tokens of CORRECT completions (DECS's "NRP detector" role).

  Args: per-row token pieces (`token_pieces`), references and answer kinds, as lists.
  Returns: one float32 array per row, shaped like its pieces, 1 on redundant tokens.
  """

  def __call__(self, pieces: Sequence[Sequence[str]], refs: Sequence[str],
               kinds: Sequence[str]) -> list[np.ndarray]: ...


# name → factory(check) → judge; config.reward.decs.judge picks one.
REDUNDANCY_JUDGES = Registry("redundancy judge")


def newline_chunks(pieces: Sequence[str]) -> list[tuple[int, int]]:
  """[start, end) token spans of chunks; a chunk ends after a token containing a newline."""
  spans, start = [], 0
  for k, piece in enumerate(pieces):
    if "\n" in piece:
      spans.append((start, k + 1))
      start = k + 1
  if start < len(pieces):
    spans.append((start, len(pieces)))
  return spans


@REDUNDANCY_JUDGES.register("first_correct_line")
def first_correct_line_judge(check: CheckFn) -> RedundancyJudge:
  """Built-in judge: chunk at newlines; the first chunk whose own text the verifier accepts
  holds the answer; every token of the later chunks is redundant. No accepted chunk: none.

  Inferred: a verifier stand-in for DECS's trained judge model (served over HTTP there).
  """
  def judge(pieces, refs, kinds):
    spans = [newline_chunks(p) for p in pieces]
    texts, owners = [], []
    for row, (row_pieces, row_spans) in enumerate(zip(pieces, spans)):
      for a, b in row_spans:
        texts.append("".join(row_pieces[a:b]))
        owners.append(row)
    ok = check(texts, [refs[o] for o in owners], [kinds[o] for o in owners]) if texts else []
    out, cursor = [], 0
    for row_pieces, row_spans in zip(pieces, spans):
      mask = np.zeros(len(row_pieces), np.float32)
      hits = [k for k in range(len(row_spans)) if ok[cursor + k]]
      if hits:
        mask[row_spans[hits[0]][1]:] = 1.0
      out.append(mask)
      cursor += len(row_spans)
    return out
  return judge


# --------------------------------------------------------------------------- the providers


@dataclasses.dataclass
class HostInputs:
  """What a provider may read besides the batch: text, verifier, tokenizer, and the features
  computed before it in this call (providers run in the order the needs were declared)."""
  tokens_bt: np.ndarray
  length_b: np.ndarray
  texts: Sequence[str]
  refs: Sequence[str]
  kinds: Sequence[str]
  tokenizer: Any
  check: CheckFn
  group_size: int
  features: dict = dataclasses.field(default_factory=dict)

  @functools.cached_property
  def rows(self) -> list[np.ndarray]:
    """Each row's completion ids, without padding."""
    return [self.tokens_bt[i, :self.length_b[i]] for i in range(len(self.length_b))]

  @functools.cached_property
  def pieces(self) -> list[list[str]]:
    """Each row's tokens decoded one by one (`token_pieces`)."""
    return [token_pieces(self.tokenizer, r) for r in self.rows]


# name → provider(batch, host: HostInputs, options: dict) -> np.ndarray, one row per sample.
PROVIDERS = Registry("host feature")


@PROVIDERS.register("reflection_count")
def _reflection_count(batch, host: HostInputs, options: dict) -> np.ndarray:
  """[B] int32 ARLCP keyword count of each completion."""
  del batch, options
  return np.asarray([count_reflections(t) for t in host.texts], np.int32)


@PROVIDERS.register("repetitive")
def _repetitive(batch, host: HostInputs, options: dict) -> np.ndarray:
  """[B] bool `is_repetitive` with the declarer's `ngram` / `min_repeats` (LASER-DE)."""
  del batch
  return np.asarray([is_repetitive(r, options["ngram"], options["min_repeats"])
                     for r in host.rows], bool)


@PROVIDERS.register("think_mask")
def _think_mask(batch, host: HostInputs, options: dict) -> np.ndarray:
  """[B, T] float32 1 on thinking-phase tokens (`think_mask_row`; PEAR)."""
  del batch, options
  return np.stack([think_mask_row(p, host.tokens_bt.shape[1]) for p in host.pieces])


@PROVIDERS.register("redundant_mask")
def _redundant_mask(batch, host: HostInputs, options: dict) -> np.ndarray:
  """[B, T] float32 redundant tokens of the CORRECT rows, by the declarer's `judge` (DECS);
  wrong answers have no redundant tokens, so only correct rows are judged."""
  judge = REDUNDANCY_JUDGES.get(options["judge"])(host.check)
  out = np.zeros(np.shape(host.tokens_bt), np.float32)
  idx = np.flatnonzero(np.asarray(batch.correct_b))
  masks = judge([host.pieces[i] for i in idx], [host.refs[i] for i in idx],
                [host.kinds[i] for i in idx]) if len(idx) else []
  for i, m in zip(idx, masks):
    out[i, :len(m)] = m
  return out


@PROVIDERS.register("cut_length")
def _cut_length(batch, host: HostInputs, options: dict) -> np.ndarray:
  """[B] int32 DOT cut lengths: the reward's own `dot.cut_lengths_b` with its options."""
  kw = tuple(sorted((k, options[k]) for k in ("alpha", "margin", "success_threshold",
                                                "min_relative_margin")))
  return np.asarray(_cut_fn(host.group_size, kw)(np.asarray(batch.length_b),
                                                 np.asarray(batch.correct_b)), np.int32)


@PROVIDERS.register("cut_correct")
def _cut_correct(batch, host: HostInputs, options: dict) -> np.ndarray:
  """[B] bool verifier on each cut row's decoded cut text (uncut rows keep `correct_b`);
  reads "cut_length", which DOT declares first."""
  del options
  cut_b = host.features["cut_length"]
  recheck_b = np.asarray(batch.correct_b, bool).copy()
  idx = np.flatnonzero(cut_b < np.asarray(batch.length_b))
  if len(idx):
    cut_texts = [host.tokenizer.decode(host.rows[i][:cut_b[i]], skip_special_tokens=True)
                 for i in idx]
    recheck_b[idx] = host.check(cut_texts, [host.refs[i] for i in idx],
                                [host.kinds[i] for i in idx])
  return recheck_b


@functools.cache
def _cut_fn(group_size: int, kwargs: tuple):
  return jax.jit(functools.partial(dot.cut_lengths_b, group_size=group_size, **dict(kwargs)))


@dataclasses.dataclass
class HostFeatures:
  """Fills `Rollout.features` with the host features the selected components declared."""
  wanted: dict[str, dict]         # need name → options of the component that declared it
  tokenizer: Any
  check: CheckFn
  group_size: int

  def __call__(self, batch: types.Rollout, texts: Sequence[str], refs: Sequence[str],
               kinds: Sequence[str]) -> types.Rollout:
    host = HostInputs(tokens_bt=np.asarray(batch.tokens_bt),
                      length_b=np.asarray(batch.length_b), texts=texts, refs=refs,
                      kinds=kinds, tokenizer=self.tokenizer, check=self.check,
                      group_size=self.group_size)
    for name, options in self.wanted.items():
      host.features[name] = PROVIDERS.get(name)(batch, host, options)
    return batch.replace(features={**batch.features, **host.features})


def make_host_features(config, tokenizer, check: CheckFn) -> HostFeatures | None:
  """The feature hook of this run, or None when no selected component needs a host feature.

  Raises KeyError for a declared need nobody serves (a typo in a registration).
  """
  wanted = {}
  for name, options in components.needs(config).items():
    if name in SAMPLER_FEATURES or name in MONITORS:
      continue
    PROVIDERS.component(name)   # unknown need: fails here, listing the providers
    wanted[name] = options
  if not wanted:
    return None
  return HostFeatures(wanted=wanted, tokenizer=tokenizer, check=check,
                      group_size=config.rollout.group_size)


# --------------------------------------------------------------------------- monitors

# sample(examples, key, group_size) -> scored Rollout with B = len(examples) · group_size.
SampleFn = Callable[[Sequence[Any], jax.Array, int], types.Rollout]


@dataclasses.dataclass(frozen=True)
class MonitorRun:
  """What a monitor reads from the run besides its options and the component's state."""
  examples: Sequence[Any]          # the training prompts (monitor sets are drawn from them)
  sample: SampleFn
  step_index: int
  seed: int
  prompts_per_step: int
  max_new_tokens: int


# name → monitor(state, options, run: MonitorRun) -> new state of the declaring reward;
# due before steps 0, f, 2f, ... with f = the declarer's `monitor_freq` (0 = never).
MONITORS = Registry("host monitor")


def monitor_due(options: dict, step_index: int) -> bool:
  freq = options.get("monitor_freq", 0)
  return freq > 0 and step_index % freq == 0


def refresh_monitored(config, reward_state: Any, examples: Sequence[Any], sample: SampleFn,
                      step_index: int) -> Any | None:
  """The reward state after every due monitor the selected reward declared; None if no
  monitor ran (the caller then keeps its state on the mesh untouched)."""
  due = [(name, opts) for name, opts in components.needs(config).items()
         if name in MONITORS and monitor_due(opts, step_index)]
  if not due:
    return None
  run = MonitorRun(examples=examples, sample=sample, step_index=step_index, seed=config.seed,
                   prompts_per_step=config.rollout.prompts_per_step,
                   max_new_tokens=config.rollout.max_new_tokens)
  for name, opts in due:
    reward_state = MONITORS.get(name)(reward_state, opts, run)
  return reward_state


@MONITORS.register("band_monitor")
def refresh_band_targets(targets: Any, options: dict, run: MonitorRun) -> np.ndarray:
  """LASER-D/DE: new [3] band targets from `monitor_samples` rollouts on each of the first
  `monitor_prompts` training prompts.

  Prompts go in chunks of `rollout.prompts_per_step` (the last one padded by repeating the
  first prompts, then dropped) so the sampler keeps its compiled shape; the key is a pure
  function of (seed, step), so a resumed run draws the same monitor rollouts.
  """
  n, p = options["monitor_samples"], run.prompts_per_step
  examples = list(run.examples)[:options["monitor_prompts"]]
  key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(run.seed), 4), run.step_index)
  lengths, corrects = [], []
  for start in range(0, len(examples), p):
    chunk = examples[start:start + p]
    batch = run.sample(chunk + examples[:p - len(chunk)], jax.random.fold_in(key, start), n)
    rows = len(chunk) * n
    lengths.append(np.asarray(batch.length_b)[:rows])
    corrects.append(np.asarray(batch.correct_b)[:rows])
  if not lengths:
    return targets
  new = laser.band_targets_from_monitor(
      np.concatenate(lengths).reshape(-1, n), np.concatenate(corrects).reshape(-1, n),
      grid_lower=options["grid_lower"], grid_upper=options["grid_upper"],
      grid_step=options["grid_step"], expected_correct=options["expected_correct"],
      max_len=run.max_new_tokens, correct_only=options["correct_only"])
  return np.asarray(new, np.float32)
