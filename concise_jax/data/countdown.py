"""Countdown-style puzzles: combine given numbers with + - * / to reach a target.

The target is made by combining a random subset of the numbers (classic rules: every
intermediate result a positive integer), so a solution exists; it is kept in
`meta["solution"]`. Many expressions can be right, so these items verify with the "countdown"
checker (`meta["verify_kind"]`), which evaluates the model's expression exactly.
"""
import random
from typing import Sequence

from concise_jax.data import expressions
from concise_jax.data import generators
from concise_jax.data.example import Example
from concise_jax.data.expressions import Expr

LEVELS = (1, 2, 3, 4)  # level L offers L + 2 numbers
_SMALL = tuple(range(1, 11))
_LARGE = (25, 50, 75, 100)
_TARGET_RANGE = (10, 999)
_TRIES = 200


def _valid_ops(a: Expr, b: Expr) -> list[str]:
  """Operators whose result stays a positive integer, without no-op `* 1` or `/ 1`."""
  ops = ["+"]
  if a.value > b.value:
    ops.append("-")
  if a.value != 1 and b.value != 1:
    ops.append("*")
  if b.value > 1 and a.value % b.value == 0:
    ops.append("/")
  return ops


def _random_solution(rng: random.Random, values: Sequence[int]) -> Expr:
  """Combines random pairs until one expression over all `values` is left."""
  pool = [expressions.leaf(v) for v in values]
  while len(pool) > 1:
    a, b = (pool.pop(rng.randrange(len(pool))) for _ in range(2))
    pool.append(expressions.combine(a, rng.choice(_valid_ops(a, b)), b))
  return pool[0]


def _numbers(rng: random.Random, count: int) -> list[int]:
  """`count` numbers, up to two of them large, in random order (small may repeat)."""
  n_large = rng.randint(0, min(2, count - 2))
  numbers = rng.sample(_LARGE, n_large) + [rng.choice(_SMALL) for _ in range(count - n_large)]
  rng.shuffle(numbers)
  return numbers


def _draw(rng: random.Random, difficulty: int) -> generators.Problem:
  for _ in range(_TRIES):
    numbers = _numbers(rng, difficulty + 2)
    # Use at least three numbers when more are offered, so larger levels are not trivial.
    used = rng.sample(numbers, rng.randint(min(3, len(numbers) - 1), len(numbers)))
    solution = _random_solution(rng, used)
    target = int(solution.value)
    if _TARGET_RANGE[0] <= target <= _TARGET_RANGE[1] and target not in numbers:
      break
  else:
    raise RuntimeError(f"no countdown target in range after {_TRIES} tries")
  shown = ", ".join(map(str, numbers))
  prompt = (f"Use the numbers {shown} to make {target}. You may use +, -, * and /, "
            f"and each number at most once.")
  return generators.Problem(
      key=f"{sorted(numbers)}->{target}", prompt=prompt, answer=str(target),
      difficulty=difficulty,
      meta={"numbers": numbers, "target": target, "solution": solution.text,
            "verify_kind": "countdown"})


@generators.TASKS.register("countdown")
def countdown(split: str, n: int, seed: int, *, difficulty: int | Sequence[int] = 1,
              unique: bool = False) -> list[Example]:
  """Countdown puzzles with `difficulty + 2` numbers (3 to 6) and a target in 10..999.

  Args:
    split: "train" or "test".
    n: number of examples.
    seed: random seed.
    difficulty: 1-4, or several levels to mix.
    unique: no repeated (numbers, target) pairs.
  """
  levels = generators.as_levels(difficulty, LEVELS)
  return generators.sample("countdown", _draw, levels, split, n, seed, unique)
