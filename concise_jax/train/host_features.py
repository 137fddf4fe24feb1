"""Host-side rollout features that rewards read but `jit` cannot compute (text, verifier, judge).

    features = make_host_features(config, tokenizer, check)    # None: the reward needs none
    batch = features(batch, texts, refs, kinds)                 # fills optional Rollout fields

Only what the configured reward needs is computed (`REWARD_FEATURES`), so default runs pay
nothing. Per-token entropy is not computed here: the sampler returns it when
`needs_entropy(config)` (SamplingParams.return_entropy), because the logits are already there
and a separate forward pass would cost a full model call.

Also here: LASER-D/DE's periodic band-target refresh on a fixed monitor set
(`refresh_band_targets`), called by the host loop every `monitor_freq` steps.
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from concise_jax import types
from concise_jax.registry import Registry
from concise_jax.rewards import dot, laser
from concise_jax.verify import extract

# (completions, references, kinds) → one bool per completion (as rollout_step.CheckFn).
CheckFn = Callable[[Sequence[str], Sequence[str], Sequence[str]], list[bool]]

# Reward name → host features it reads. Entropy comes from the sampler (see module docstring).
REWARD_FEATURES = {
    "ceeh": ("token_entropy",),
    "dot": ("dot_cut",),
    "laser_de": ("repetitive",),
    "pear": ("token_entropy", "think_mask"),
    "decs": ("redundant_mask",),
}
# Advantage name → host features it reads (GTPO's entropy gate).
ADVANTAGE_FEATURES = {"gtpo": ("token_entropy",)}
# Rewards whose band targets the host refreshes from monitor rollouts.
MONITORED_REWARDS = ("laser_d", "laser_de")
THINK_END = "</think>"


def needs(config) -> tuple[str, ...]:
  """Features the configured reward and advantage read (CEEH needs entropy only in EA mode)."""
  name = config.reward.name
  extra = ADVANTAGE_FEATURES.get(config.advantage.name, ())
  if name == "ceeh" and config.reward.ceeh.entropy_mode != "ea":
    return extra
  return tuple(dict.fromkeys(REWARD_FEATURES.get(name, ()) + extra))


def needs_entropy(config) -> bool:
  """Whether the sampler must return per-token entropy (a static SamplingParams flag)."""
  return "token_entropy" in needs(config)


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

  Inferred: the split for models without <think> tags (rewards.md §11 only defines the tag).
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


# --------------------------------------------------------------------------- the features


@dataclasses.dataclass
class HostFeatures:
  """Fills the optional `Rollout` fields the configured reward reads (numpy in, numpy out)."""
  features: tuple[str, ...]
  tokenizer: Any
  check: CheckFn
  group_size: int
  reward_kwargs: dict
  judge: RedundancyJudge | None = None

  def __call__(self, batch: types.Rollout, texts: Sequence[str], refs: Sequence[str],
               kinds: Sequence[str]) -> types.Rollout:
    tokens_bt = np.asarray(batch.tokens_bt)
    length_b = np.asarray(batch.length_b)
    rows = [tokens_bt[i, :length_b[i]] for i in range(len(length_b))]
    fills = {}
    if "repetitive" in self.features:
      kw = self.reward_kwargs
      fills["repetitive_b"] = np.asarray(
          [is_repetitive(r, kw["ngram"], kw["min_repeats"]) for r in rows], bool)
    pieces = None
    if {"think_mask", "redundant_mask"} & set(self.features):
      pieces = [token_pieces(self.tokenizer, r) for r in rows]
    if "think_mask" in self.features:
      fills["think_mask_bt"] = np.stack([think_mask_row(p, tokens_bt.shape[1]) for p in pieces])
    if "redundant_mask" in self.features:
      fills["redundant_mask_bt"] = self._redundant(batch, pieces, refs, kinds)
    if "dot_cut" in self.features:
      fills.update(self._dot_cut(batch, rows, refs, kinds))
    return batch.replace(**fills)

  def _redundant(self, batch, pieces, refs, kinds) -> np.ndarray:
    """Judge the correct rows only (wrong answers have no redundant tokens)."""
    out = np.zeros(np.shape(batch.tokens_bt), np.float32)
    idx = np.flatnonzero(np.asarray(batch.correct_b))
    masks = self.judge([pieces[i] for i in idx], [refs[i] for i in idx],
                       [kinds[i] for i in idx]) if len(idx) else []
    for i, m in zip(idx, masks):
      out[i, :len(m)] = m
    return out

  def _dot_cut(self, batch, rows, refs, kinds) -> dict:
    """DOT: cut lengths (the reward's own jnp function) and the verifier on the cut text."""
    kw = {k: self.reward_kwargs[k] for k in ("alpha", "margin", "success_threshold",
                                             "min_relative_margin")}
    cut_b = np.asarray(_cut_fn(self.group_size, tuple(sorted(kw.items())))(
        np.asarray(batch.length_b), np.asarray(batch.correct_b)))
    recheck_b = np.asarray(batch.correct_b, bool).copy()
    idx = np.flatnonzero(cut_b < np.asarray(batch.length_b))
    if len(idx):
      cut_texts = [self.tokenizer.decode(rows[i][:cut_b[i]], skip_special_tokens=True)
                   for i in idx]
      recheck_b[idx] = self.check(cut_texts, [refs[i] for i in idx], [kinds[i] for i in idx])
    return {"cut_length_b": cut_b.astype(np.int32), "cut_correct_b": recheck_b}


@functools.cache
def _cut_fn(group_size: int, kwargs: tuple):
  return jax.jit(functools.partial(dot.cut_lengths_b, group_size=group_size, **dict(kwargs)))


def make_host_features(config, tokenizer, check: CheckFn) -> HostFeatures | None:
  """The feature hook of this run, or None when the reward reads no host feature."""
  features = tuple(f for f in needs(config) if f != "token_entropy")
  if not features:
    return None
  kwargs = config.reward[config.reward.name].to_dict()
  judge = (REDUNDANCY_JUDGES.get(kwargs["judge"])(check) if "redundant_mask" in features
           else None)
  return HostFeatures(features=features, tokenizer=tokenizer, check=check,
                      group_size=config.rollout.group_size, reward_kwargs=kwargs, judge=judge)


# --------------------------------------------------------------------------- LASER monitor

# sample(examples, key, group_size) -> scored Rollout with B = len(examples) · group_size.
SampleFn = Callable[[Sequence[Any], jax.Array, int], types.Rollout]


def monitor_due(config, step_index: int) -> bool:
  """LASER-D/DE refresh their band targets before steps 0, f, 2f, ... (f = monitor_freq)."""
  if config.reward.name not in MONITORED_REWARDS:
    return False
  freq = config.reward[config.reward.name].monitor_freq
  return freq > 0 and step_index % freq == 0


def refresh_band_targets(config, reward_state: types.RewardState, examples: Sequence[Any],
                         sample: SampleFn, step_index: int) -> types.RewardState:
  """New `band_targets` from `monitor_samples` rollouts on each monitor prompt.

  Prompts go in chunks of `rollout.prompts_per_step` (the last one padded by repeating the
  first prompts, then dropped) so the sampler keeps its compiled shape; the key is a pure
  function of (seed, step), so a resumed run draws the same monitor rollouts.
  """
  kw = config.reward[config.reward.name]
  n, p = kw.monitor_samples, config.rollout.prompts_per_step
  examples = list(examples)[:kw.monitor_prompts]
  key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(config.seed), 4), step_index)
  lengths, corrects = [], []
  for start in range(0, len(examples), p):
    chunk = examples[start:start + p]
    batch = sample(chunk + examples[:p - len(chunk)], jax.random.fold_in(key, start), n)
    rows = len(chunk) * n
    lengths.append(np.asarray(batch.length_b)[:rows])
    corrects.append(np.asarray(batch.correct_b)[:rows])
  if not lengths:
    return reward_state
  targets = laser.band_targets_from_monitor(
      np.concatenate(lengths).reshape(-1, n), np.concatenate(corrects).reshape(-1, n),
      grid_lower=kw.grid_lower, grid_upper=kw.grid_upper, grid_step=kw.grid_step,
      expected_correct=kw.expected_correct, max_len=config.rollout.max_new_tokens,
      correct_only=kw.correct_only)
  return reward_state.replace(band_targets=np.asarray(targets, np.float32))
