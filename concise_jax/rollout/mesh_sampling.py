"""The one host entry to the sampler that training, evaluation and benchmarks share.

    fmt = PromptFormat(instruction="brief", max_prompt_tokens=256)
    tokens_ps, mask_ps, cut = encode_prompts(tokenizer, examples, fmt)
    out = sample(cfg, params, tokens_ps, mask_ps, key, sampling_params(tokenizer, ...),
                 num_samples=G, layout=layout)

Prompt encoding (chat template, instruction, stated budget, cut and left padding) and the
`SamplingParams` are built here once, so a training rollout, a training-time evaluation and
`python -m concise_jax.eval` turn the same example into the same tokens.

Host prompts become global arrays sharded over the mesh's batch axes, every device decodes only
its rows, and the completions come back to every process as whole host arrays together with
the rows this process must decode to text and verify (see `distributed.owned_rows`).
"""
import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from concise_jax import data, distributed, sharding
from concise_jax.rollout import sampler
from concise_jax.rollout.generate import chat_ids, left_pad

PROMPT_BUCKET = 64  # uncapped prompt lengths round up to this: few distinct shapes


@dataclasses.dataclass(frozen=True)
class PromptFormat:
  """How an `Example` becomes model input.

  Attributes:
    instruction: a key of `data.instructions.INSTRUCTIONS` or literal text after the question.
    system_prompt: the system turn; "" or None keeps the chat template's default.
    max_prompt_tokens: the fixed padded length; longer prompts keep their last tokens (the
      question's end and the assistant header). 0 = no cut: pad to the longest prompt rounded
      up to `bucket`.
    bucket: rounding of the uncapped padded length.
    budget_template: e.g. "Think for {n} tokens." (L1): with per-prompt budgets, appended to
      each prompt.
  """
  instruction: str = "none"
  system_prompt: str | None = None
  max_prompt_tokens: int = 0
  bucket: int = PROMPT_BUCKET
  budget_template: str = ""


def with_budgets(examples: Sequence[data.Example], template: str,
                 budget_p: Sequence[int] | None) -> list[data.Example]:
  """The examples with `template.format(n=budget)` on a new line after each prompt."""
  if budget_p is None or not template:
    return list(examples)
  return [dataclasses.replace(ex, prompt=f"{ex.prompt}\n{template.format(n=int(n))}")
          for ex, n in zip(examples, budget_p)]


def prompt_ids(tokenizer, examples: Sequence[data.Example], fmt: PromptFormat,
               budget_p: Sequence[int] | None = None) -> list[list[int]]:
  """Chat-formatted token ids of every example (instruction and stated budget appended),
  uncut."""
  system = fmt.system_prompt or None
  return [chat_ids(tokenizer, data.add_instruction(ex, fmt.instruction), system)
          for ex in with_budgets(examples, fmt.budget_template, budget_p)]


def padded_length(ids: Sequence[Sequence[int]], fmt: PromptFormat) -> int:
  """The prompt length every batch of these prompts is padded to: the cap, or else the longest
  prompt rounded up to the bucket (fixed for a dataset, so the sampler compiles once)."""
  if fmt.max_prompt_tokens > 0:
    return fmt.max_prompt_tokens
  longest = max([len(x) for x in ids] + [1])
  return fmt.bucket * -(-longest // fmt.bucket)


def pad_prompts(ids: Sequence[Sequence[int]], pad_id: int,
                length: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Left-padded [P, length] tokens and mask; prompts longer than `length` keep their last
  `length` tokens. Also returns how many were cut (log it: > 0 means raise the cap)."""
  cut = sum(len(x) > length for x in ids)
  tokens_ps, mask_ps = left_pad([list(x)[-length:] for x in ids], pad_id, bucket=length)
  return tokens_ps, mask_ps, cut


def encode_prompts(tokenizer, examples: Sequence[data.Example], fmt: PromptFormat,
                   budget_p: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
  """`prompt_ids` → `pad_prompts` at `padded_length`: (tokens [P, S], mask [P, S], cut)."""
  ids = prompt_ids(tokenizer, examples, fmt, budget_p)
  return pad_prompts(ids, tokenizer.pad_id, padded_length(ids, fmt))


def sampling_params(tokenizer, *, max_new_tokens: int, temperature: float, top_k: int = 0,
                    top_p: float = 1.0, return_entropy: bool = False) -> sampler.SamplingParams:
  """Static sampling settings; temperature 0 is greedy and turns top-k / top-p off."""
  greedy = temperature == 0
  return sampler.SamplingParams(
      max_new_tokens=max_new_tokens, temperature=0.0 if greedy else temperature,
      top_k=0 if greedy else top_k, top_p=1.0 if greedy else top_p,
      eos_ids=tuple(tokenizer.eos_ids), pad_id=tokenizer.pad_id, return_entropy=return_entropy)


@dataclasses.dataclass
class MeshSample:
  """A sampled batch on the host: `out` has all B rows on every process; this process handles
  `rows` (its own) on the host; `owner` [B] says which process handles each row (whole groups
  of G samples go to one process)."""
  out: sampler.SampleOutput
  rows: np.ndarray
  owner: np.ndarray


def sample(cfg, params: dict, tokens_ps: np.ndarray, mask_ps: np.ndarray, key: jax.Array,
           sp: sampler.SamplingParams, *, num_samples: int,
           layout: sharding.Layout | None = None, budget_b: np.ndarray | None = None,
           steering=None) -> MeshSample:
  """Samples `num_samples` completions of each left-padded prompt on `layout`'s mesh.

  Args:
    cfg, params: the policy; with a layout, params must already live on its mesh (e.g. the
      trainer's params in their training layout).
    tokens_ps, mask_ps: [P, S] host prompts, the same on every process.
    key: sampling key (same on every process); same key, same tokens on any mesh.
    sp: static sampling settings.
    num_samples: G.
    layout: the mesh to decode on; None = wherever `params` live (one device, one process).
    budget_b: optional [P * G] per-row token budgets.
    steering: optional activation steering (host or replicated values).
  """
  b = tokens_ps.shape[0] * num_samples
  if layout is None:
    out = sampler.sample(cfg, params, tokens_ps, mask_ps, key, sp, num_samples=num_samples,
                         budget_b=budget_b, steering=steering)
    return MeshSample(out=distributed.fetch(out), rows=np.arange(b),
                      owner=np.zeros((b,), np.int32))
  prompts_sh = layout.sharding(("batch", None), tokens_ps.shape)
  rows_sh = layout.sharding(("batch",), (b,))
  rep = sharding.replicated(layout.mesh)
  tokens, mask = distributed.put((np.asarray(tokens_ps), np.asarray(mask_ps)), prompts_sh)
  key = distributed.put(key, rep)
  if budget_b is not None:
    budget_b = distributed.put(np.asarray(budget_b, np.int32), rows_sh)
  if steering is not None:
    steering = distributed.put(steering, rep)
  out = sampler.sample(cfg, params, tokens, mask, key, sp, num_samples=num_samples,
                       budget_b=budget_b, steering=steering, layout=layout)
  # Whole groups per process: host features such as DOT's cut compare a group's samples.
  owner = np.repeat(distributed.row_owner(rows_sh, b)[::num_samples], num_samples)
  return MeshSample(out=distributed.fetch(out),
                    rows=np.flatnonzero(owner == jax.process_index()), owner=owner)
