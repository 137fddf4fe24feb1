"""Built-in verifiable tasks: seeded generators with exact answers and a difficulty knob.

Every task is registered in `TASKS` under its name and has the signature

    generate(split: str, n: int, seed: int, **kwargs) -> list[Example]

deterministic given its arguments. Tasks need no file or network: they are the default data.

Train and test never share a problem: a problem's split is a hash of its canonical key (the
expression or equation, without names or wording), so it does not depend on the seed or on `n`,
and both splits can be generated with any seed. Small problem spaces repeat items unless
`unique=True` (e.g. single-digit addition has 100 problems, ~20 of them in test).
"""
import dataclasses
import hashlib
import random
from typing import Any, Callable, Sequence

from concise_jax.data.example import Example
from concise_jax.registry import Registry

TASKS = Registry("task")

SPLITS = ("train", "test")
# Share of every problem space that belongs to the test split.
TEST_FRACTION = 0.2
# Draws allowed per requested item before giving up (rejections: wrong split, duplicates).
_TRIES_PER_ITEM = 200


@dataclasses.dataclass(frozen=True)
class Problem:
  """What a task's draw function returns; `sample` turns it into an `Example`.

  Attributes:
    key: canonical identity of the problem (e.g. `3 + 5`); decides its split.
    prompt: the question text.
    answer: exact reference answer text.
    difficulty: the level this problem was drawn at.
    meta: extra JSON-serialisable fields (e.g. the expression that computes the answer).
  """
  key: str
  prompt: str
  answer: str
  difficulty: int
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def _hash64(text: str) -> int:
  return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def split_of(key: str) -> str:
  """The split a problem key belongs to: "test" for a fixed ~`TEST_FRACTION` of keys."""
  return "test" if _hash64(key) % 10_000 < TEST_FRACTION * 10_000 else "train"


def make_rng(*parts: Any) -> random.Random:
  """A `random.Random` seeded from a hash of `parts`, stable across Python runs and versions."""
  return random.Random(_hash64(repr(parts)))


def as_levels(difficulty: int | Sequence[int], known: Sequence[int]) -> list[int]:
  """Validates `difficulty` (one level, or several to mix uniformly) against `known` levels."""
  levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
  unknown = [d for d in levels if d not in known]
  if not levels or unknown:
    raise ValueError(f"unknown difficulty {unknown or difficulty!r}; valid levels: {list(known)}")
  return levels


def sample(name: str, draw: Callable[[random.Random, int], Problem], levels: Sequence[int],
           split: str, n: int, seed: int, unique: bool = False) -> list[Example]:
  """Draws `n` problems of `split`, each at a level chosen uniformly from `levels`.

  Args:
    name: task name; becomes `Example.source` and prefixes ids.
    draw: `(rng, level) -> Problem`, one random problem at that level.
    levels: difficulty levels to mix.
    split: "train" or "test"; problems of the other split are rejected.
    n: number of examples.
    seed: the only source of randomness (with name, split and levels).
    unique: reject repeated problems; raises if the split has fewer than `n` of them.

  Returns:
    `n` examples with ids `{name}/{split}/s{seed}/d{levels}/{i:05d}`.
  """
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
  rng = make_rng(name, split, seed, tuple(levels))
  tag = f"{name}/{split}/s{seed}/d{'-'.join(map(str, levels))}"
  examples, seen = [], set()
  for _ in range(_TRIES_PER_ITEM * n + 1000):
    if len(examples) == n:
      return examples
    problem = draw(rng, rng.choice(levels))
    if split_of(problem.key) != split or (unique and problem.key in seen):
      continue
    seen.add(problem.key)
    examples.append(Example(id=f"{tag}/{len(examples):05d}", prompt=problem.prompt,
                            answer=problem.answer, difficulty=problem.difficulty, split=split,
                            source=name, meta=problem.meta))
  if len(examples) == n:
    return examples
  raise ValueError(f"task {name!r}: found only {len(examples)} distinct {split} problems at "
                   f"difficulty {list(levels)}; ask for fewer or pass unique=False")


def generate(name: str, split: str = "train", n: int = 1000, seed: int = 0,
             **kwargs) -> list[Example]:
  """Runs the registered task `name`; an unknown name lists the valid ones."""
  return TASKS.get(name)(split, n, seed, **kwargs)
