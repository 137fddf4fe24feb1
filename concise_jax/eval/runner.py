"""Runs a policy over datasets: fixed-shape batches, greedy and/or k samples, verification.

    policy = load_policy("smollm2-135m-instruct")
    with Verifier() as verifier:
      result = evaluate_dataset(policy, examples, settings, verifier)

Shapes never change within a dataset: examples go in chunks of a fixed number of prompts (the
last chunk is padded by repeating its final example, whose extra rows are dropped) and every
prompt is left-padded to the dataset's longest prompt rounded up to a bucket (or cut and padded to
`max_prompt_tokens`, as training does). So the sampler
compiles once per (dataset prompt length, pass) and datasets with the same padded length share
the compile.

Verification overlaps generation: each chunk's completions go to the `Verifier` process pool as
soon as they are decoded, and the futures are collected at the end.

Training-time evaluation (`train.loop.evaluate`) runs `evaluate_dataset` too, with settings from
the run's config, so both report the same `metrics.summarize` numbers for the same policy.
"""
import dataclasses
import os
from concurrent import futures
import time
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import tqdm

from concise_jax import data, distributed, models, rollout, sharding
from concise_jax.data.example import Example
from concise_jax.rollout import mesh_sampling
from concise_jax.verify import Verifier, reference_of

PROMPT_BUCKET = mesh_sampling.PROMPT_BUCKET  # uncapped prompt lengths round up to this


@dataclasses.dataclass(frozen=True)
class Policy:
  """What an evaluation needs from a checkpoint: the triple `models.load` returns, a name, and
  the mesh it decodes on (None: one device)."""
  name: str
  cfg: models.ModelConfig
  params: Any
  tokenizer: Any
  layout: sharding.Layout | None = None
  # (drafter, draft_params, SpecParams | TreeParams, max_batch) to decode with lossless
  # speculative sampling (rollout/speculative.py, a chain; speculative_tree.py, a tree) on
  # chunks of at most max_batch rows, on one device; None = plain.
  speculative: Any = None


def place_on_mesh(policy: Policy, mesh_shape=(1, -1, 1), rules=sharding.DEFAULT_RULES,
                  dcn_shape=None) -> Policy:
  """The policy with its params sharded over a mesh by the logical rules (as in training), so
  decode rows spread over every device and process."""
  mesh = sharding.make_mesh(mesh_shape, dcn_shape=dcn_shape)
  layout = sharding.Layout.of(mesh, rules)
  shardings = sharding.tree_shardings(mesh, models.param_axes(policy.cfg), layout.rules,
                                      policy.params)
  return dataclasses.replace(policy, params=distributed.put(policy.params, shardings),
                             layout=layout)


def load_policy(spec: str) -> Policy:
  """Loads the policy to evaluate from a checkpoint spec.

  This is the one place that knows checkpoint layouts; the CLI and scripts call only this.

  Args:
    spec: "tiny" (the random test model, seed 0), a known model name
      ("smollm2-135m-instruct"), a `.gguf` file, or a Hugging Face checkpoint directory.
      A training workdir (a directory holding `ckpt/` and `config.json`) loads its latest
      checkpoint, LoRA adapters merged into the base model of its config.
  """
  if spec == "tiny":
    cfg, params, tokenizer = models.tiny.load_tiny(0)
    return Policy(spec, cfg, params, tokenizer)
  if os.path.isdir(os.path.join(spec, "ckpt")):
    from concise_jax.train import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
    cfg, params, tokenizer, _ = trainer_lib.load_trained_policy(spec)
    return Policy(spec, cfg.replace(remat=False), params, tokenizer)
  cfg, params, tokenizer = models.load(spec)
  return Policy(spec, cfg, params, tokenizer)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """How completions are generated.

  Attributes:
    greedy: run one greedy completion per example (greedy pass@1).
    k: samples per example at `temperature` (0 = no sampled pass); gives mean@k and pass@k.
    temperature, top_p, top_k: sampling settings of the sampled pass.
    max_new_tokens: decode budget; a completion that reaches it unfinished is truncated.
    batch_size: decode rows per call; the sampled pass uses max(1, batch_size // k) prompts.
    system: system prompt; None keeps the chat template's default one.
    instruction: a key of `data.instructions.INSTRUCTIONS` or literal text after the question.
    seed: sampling seed; chunk i of a pass samples with a key folded from (seed, pass,
      dataset label, i), so datasets and passes draw independently and reproducibly.
    steering: path of a `steering.save` vector file (ASC); None = unsteered.
    steering_strength: γ multiplying the raw vector; None = the strength calibrated into the
      file (`calibration_strength`), if any.
    steering_rule: position rule ("last" = ASC, "all"); None = the file's.
    max_prompt_tokens: pad every prompt to this length, keeping the last tokens of longer ones
      (training's `rollout.max_prompt_tokens`); 0 = no cut, pad to the dataset's longest
      prompt rounded up to `PROMPT_BUCKET`.
  """
  greedy: bool = True
  k: int = 0
  temperature: float = 0.7
  top_p: float = 1.0
  top_k: int = 0
  max_new_tokens: int = 256
  batch_size: int = 32
  system: str | None = None
  instruction: str = "none"
  seed: int = 0
  steering: str | None = None
  steering_strength: float | None = None
  steering_rule: str | None = None
  max_prompt_tokens: int = 0


def load_steering(settings: EvalSettings):
  """The `models.Steering` the settings ask for, or None."""
  if not settings.steering:
    return None
  from concise_jax import steering  # pylint: disable=import-outside-toplevel
  vec = steering.load(settings.steering)
  strength = settings.steering_strength
  if strength is None:
    if "calibration_strength" not in vec.extra:
      raise ValueError(f"{settings.steering} has no calibrated strength: pass a strength")
    strength = float(vec.extra["calibration_strength"])
  return vec.steering(strength, settings.steering_rule)


# --------------------------------------------------------------------------- data

def dataset_label(spec: str) -> str:
  """A short table label: `task:arithmetic?difficulty=1-5` → `arithmetic?difficulty=1-5`,
  `gsm8k:/data/gsm8k_test.jsonl` → `gsm8k_test`."""
  kind, _, target = spec.partition(":")
  if kind == "task":
    return target
  return os.path.splitext(os.path.basename(target.partition("?")[0]))[0] or spec


def load_examples(spec: str, n: int, seed: int, *, split: str = "test",
                  data_dir: str | None = None, bad_rows: str = "error") -> list[Example]:
  """Up to `n` examples: tasks generate `split` (test by default), files keep their first n rows.

  The spec syntax is `data.parse_data_spec`'s, as in training configs. Files go through the
  tfds builders into `data_dir` (prepared once, then reused); None = `default_data_dir()`.
  """
  if data.parse_data_spec(spec).kind == "task":
    return list(data.load_dataset(spec, split=split, n=n, seed=seed))
  if data_dir is None:
    from concise_jax.data import tfds_builders  # pylint: disable=import-outside-toplevel  # heavy
    data_dir = tfds_builders.default_data_dir()
  source = data.load_dataset(spec, data_dir=data_dir, bad_rows=bad_rows)
  return [source[i] for i in range(min(n, len(source)))]


# --------------------------------------------------------------------------- batching

def chunk_indices(num_items: int, size: int) -> list[list[int]]:
  """Index lists of exactly `size`; the last is padded by repeating its final index."""
  chunks = [list(range(i, min(i + size, num_items))) for i in range(0, num_items, size)]
  if chunks and len(chunks[-1]) < size:
    chunks[-1] += [chunks[-1][-1]] * (size - len(chunks[-1]))
  return chunks


def prompt_format(settings: "EvalSettings") -> mesh_sampling.PromptFormat:
  """The prompt encoding of these settings (training's `rollout_step` builds the same
  `PromptFormat` from its config)."""
  return mesh_sampling.PromptFormat(instruction=settings.instruction,
                                    system_prompt=settings.system,
                                    max_prompt_tokens=settings.max_prompt_tokens,
                                    bucket=PROMPT_BUCKET)


def prompt_ids(policy: Policy, examples: Sequence[Example], settings: EvalSettings):
  """Chat-formatted token ids of every example, with the instruction appended."""
  return mesh_sampling.prompt_ids(policy.tokenizer, examples, prompt_format(settings))


# --------------------------------------------------------------------------- generation

@dataclasses.dataclass
class PassTiming:
  """Wall time, generated tokens and decode work of one pass.

  The first chunk's time includes the compile (unless an earlier dataset had the same shapes).
  `row_steps` counts the decode work actually done: every row of a chunk (padding included)
  runs until the chunk's longest completion ends, so tokens / row_steps is the share of decode
  work that produced kept tokens.
  """
  chunks: int = 0
  wall_s: float = 0.0
  first_chunk_s: float = 0.0
  tokens: int = 0
  row_steps: int = 0
  steady_tokens: int = 0
  steady_s: float = 0.0

  def add(self, seconds: float, tokens: int, row_steps: int) -> None:
    if self.chunks == 0:
      self.first_chunk_s = seconds
    else:
      self.steady_s += seconds
      self.steady_tokens += tokens
    self.chunks += 1
    self.wall_s += seconds
    self.tokens += tokens
    self.row_steps += row_steps

  def summary(self) -> dict[str, float]:
    """Rates over everything, and tokens/s excluding the first (compiling) chunk if possible."""
    rate = lambda x, s: x / s if s > 0 else 0.0
    steady = rate(self.steady_tokens, self.steady_s) if self.chunks > 1 else None
    return {"chunks": self.chunks, "wall_s": self.wall_s, "first_chunk_s": self.first_chunk_s,
            "tokens": self.tokens, "row_steps": self.row_steps,
            "tok_per_s": rate(self.tokens, self.wall_s), "tok_per_s_steady": steady,
            "row_steps_per_s": rate(self.row_steps, self.wall_s)}


def _sampling_params(policy: Policy, settings: EvalSettings, greedy: bool):
  return mesh_sampling.sampling_params(
      policy.tokenizer, max_new_tokens=settings.max_new_tokens,
      temperature=0.0 if greedy else settings.temperature, top_k=settings.top_k,
      top_p=settings.top_p)


class InlineVerifier:
  """A `Verifier` stand-in over a plain check function `(texts, references, kinds) -> bools`
  (training's in-process or pooled checker): `submit` checks at once."""

  def __init__(self, check):
    self._check = check

  def submit(self, completions, references, kinds) -> futures.Future:
    done = futures.Future()
    done.set_result(self._check(list(completions), list(references), list(kinds)))
    return done


def _pass_key(settings: EvalSettings, greedy: bool, label: str) -> jax.Array:
  """Seed, pass and dataset folded in, so datasets and passes draw independently."""
  key = jax.random.fold_in(jax.random.key(settings.seed), 0 if greedy else 1)
  return jax.random.fold_in(key, zlib.crc32(label.encode()) & 0x7FFFFFFF)


def _decode_chunk(policy: Policy, tokens, mask, key, sp, g: int, keep: int, steering=None):
  """Samples g completions per prompt row; returns the first `keep` rows' (texts, lengths,
  truncated flags, the rows among them this process verifies, the row owner map), the seconds
  it took, and the decode row-steps it ran."""
  t0 = time.perf_counter()
  if policy.speculative is not None and tokens.shape[0] * g <= policy.speculative[3]:
    from concise_jax.rollout import speculative, speculative_tree  # pylint: disable=import-outside-toplevel
    drafter, dp, spec, _ = policy.speculative
    sample_fn = (speculative_tree.sample if isinstance(spec, speculative_tree.TreeParams)
                 else speculative.sample)   # a chain's SpecParams or a tree's TreeParams
    out = sample_fn(policy.cfg, policy.params, drafter, dp, tokens, mask, key, sp, spec,
                    num_samples=g)
    rows = np.arange(out.length_b.shape[0])
    sampled = mesh_sampling.MeshSample(out=distributed.fetch(out), rows=rows,
                                       owner=np.zeros_like(rows))
  else:
    sampled = mesh_sampling.sample(policy.cfg, policy.params, tokens, mask, key, sp,
                                   num_samples=g, layout=policy.layout, steering=steering)
  out = sampled.out
  texts = rollout.completions_to_text(policy.tokenizer, out)
  lengths, truncated = np.asarray(out.length_b), np.asarray(out.truncated_b)
  seconds = time.perf_counter() - t0
  row_steps = int(lengths.max(initial=0)) * len(lengths)
  mine = sampled.rows[sampled.rows < keep]
  return (texts[:keep], lengths[:keep], truncated[:keep], mine, sampled.owner[:keep], seconds,
          row_steps)


def run_pass(policy: Policy, ids: Sequence[Sequence[int]], settings: EvalSettings,
             verifier: Verifier | InlineVerifier, references: Sequence[tuple[str, str]], *,
             greedy: bool, label: str = "",
             progress: bool = True) -> tuple[list[list[dict]], PassTiming]:
  """Generates and verifies completions for every prompt.

  Args:
    policy: the model.
    ids: chat-formatted prompt ids, one per example.
    settings: decode settings.
    verifier: checks answers in a process pool (overlapping the next chunk's generation).
    references: `(reference, kind)` per example (`verify.reference_of`).
    greedy: one greedy completion per example; otherwise `settings.k` samples.
    label: the dataset's name: labels the progress bar and seeds the sampling key.
    progress: show a tqdm bar with generated tokens per second.

  Returns:
    (per example, a list of completion dicts {text, tokens, correct, truncated}; timing).
  """
  g = 1 if greedy else settings.k
  sp, key = _sampling_params(policy, settings, greedy), _pass_key(settings, greedy, label)
  prompt_len = mesh_sampling.padded_length(ids, prompt_format(settings))
  steer = load_steering(settings)
  pending, timing = [], PassTiming()
  bar = tqdm.tqdm(total=len(ids), desc=f"{label} {'greedy' if greedy else 'sampled'}".strip(),
                  unit="ex", disable=not progress, dynamic_ncols=True)
  per_chunk = settings.batch_size if greedy else max(1, settings.batch_size // g)
  for i, chunk in enumerate(chunk_indices(len(ids), per_chunk)):
    real = chunk[:len(dict.fromkeys(chunk))]  # the repeated tail is padding: decoded, dropped
    tokens, mask, _ = mesh_sampling.pad_prompts([ids[j] for j in chunk], policy.tokenizer.pad_id,
                                                prompt_len)
    texts, lengths, truncated, mine, owner, seconds, row_steps = _decode_chunk(
        policy, tokens, mask, jax.random.fold_in(key, i), sp, g, len(real) * g, steer)
    timing.add(seconds, int(lengths.sum()), row_steps)
    refs = [references[j] for j in real for _ in range(g)]
    # Each process verifies its own rows; the flags are combined in `_collect`.
    future = verifier.submit([texts[r] for r in mine], [refs[r][0] for r in mine],
                             [refs[r][1] for r in mine])
    pending.append((real, texts, lengths, truncated, (mine, owner, future)))
    bar.update(len(real))
    bar.set_postfix_str(f"{timing.summary()['tok_per_s']:.1f} tok/s")
  bar.close()
  return _collect(pending, len(ids), g), timing


def _collect(pending, num_examples: int, g: int) -> list[list[dict]]:
  """Waits for the verifier and groups each example's completions."""
  results: list[list[dict]] = [[] for _ in range(num_examples)]
  for chunk, texts, lengths, truncated, (mine, owner, future) in pending:
    local = np.asarray(future.result(), bool).reshape(-1)
    correct = distributed.combine_rows(local, mine, len(texts), owner)
    for row, j in enumerate(np.repeat(chunk, g)):
      results[j].append({"text": texts[row], "tokens": int(lengths[row]),
                         "correct": bool(correct[row]), "truncated": bool(truncated[row])})
  return results


def _record(example: Example) -> dict:
  """The per-example fields every record carries (the completions are added by the passes)."""
  record = {"id": example.id, "source": example.source, "difficulty": example.difficulty,
            "answer": example.answer}
  if "subject" in example.meta:
    record["subject"] = example.meta["subject"]
  return record


def evaluate_dataset(policy: Policy, examples: Sequence[Example], settings: EvalSettings,
                     verifier: Verifier | InlineVerifier, *, label: str = "",
                     progress: bool = True) -> tuple[list[dict], dict[str, dict]]:
  """Greedy and/or sampled completions of every example, verified.

  Returns:
    (records — see `metrics.py` for their fields —, {"greedy"/"sampled": timing summary}).
  """
  if not settings.greedy and settings.k <= 0:
    raise ValueError("nothing to evaluate: greedy is off and k = 0")
  ids = prompt_ids(policy, examples, settings)
  references = [reference_of(ex) for ex in examples]
  records = [_record(ex) for ex in examples]
  throughput = {}
  passes = ([("greedy", True)] if settings.greedy else []) + (
      [("sampled", False)] if settings.k > 0 else [])
  for name, greedy in passes:
    completions, timing = run_pass(policy, ids, settings, verifier, references, greedy=greedy,
                                   label=label, progress=progress)
    for record, comps in zip(records, completions):
      if greedy:
        record["greedy"] = comps[0]
      else:
        record["samples"] = comps
    throughput[name] = timing.summary()
  return records, throughput
