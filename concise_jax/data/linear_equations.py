"""Linear equations in one unknown with an integer solution: `Solve for x: 3x + 5 = 20.`

The solution x is drawn first and the constants are derived from it, so the answer is exact by
construction. Levels: 1 `x + b = c`; 2 `ax + b = c`; 3 `ax + b = cx + d`; 4 `a(x + b) = cx + d`.
"""
import random
from typing import Sequence

from concise_jax.data import generators
from concise_jax.data.example import Example

LEVELS = (1, 2, 3, 4)


def _term(coefficient: int) -> str:
  """`3x`, `x`, `-x`, `-4x`."""
  return {1: "x", -1: "-x"}.get(coefficient, f"{coefficient}x")


def _plus(constant: int) -> str:
  """` + 5`, ` - 5`, or nothing for 0."""
  if constant == 0:
    return ""
  return f" + {constant}" if constant > 0 else f" - {-constant}"


def _nonzero(rng: random.Random, lo: int, hi: int) -> int:
  return rng.choice([v for v in range(lo, hi + 1) if v != 0])


def _equation(rng: random.Random, level: int, x: int) -> str:
  """An equation at `level` whose unique solution is `x`."""
  if level == 1:
    b = rng.randint(1, 20)
    return f"x{_plus(b)} = {x + b}" if rng.random() < 0.5 else f"x - {b} = {x - b}"
  if level == 2:
    a, b = rng.randint(2, 9), _nonzero(rng, -20, 20)
    return f"{_term(a)}{_plus(b)} = {a * x + b}"
  if level == 3:
    a, c = _nonzero(rng, -9, 9), _nonzero(rng, -9, 9)
    while c == a:
      c = _nonzero(rng, -9, 9)
    b = rng.randint(-20, 20)
    d = (a - c) * x + b
    return f"{_term(a)}{_plus(b)} = {_term(c)}{_plus(d)}"
  a, b, c = rng.randint(2, 9), _nonzero(rng, -9, 9), _nonzero(rng, -9, 9)
  while c == a:
    c = _nonzero(rng, -9, 9)
  d = a * (x + b) - c * x
  return f"{a}(x{_plus(b)}) = {_term(c)}{_plus(d)}"


def _draw(rng: random.Random, difficulty: int) -> generators.Problem:
  x = rng.randint(0, 20) if difficulty == 1 else rng.randint(-12, 12)
  equation = _equation(rng, difficulty, x)
  return generators.Problem(key=equation, prompt=f"Solve for x: {equation}.", answer=str(x),
                            difficulty=difficulty, meta={"equation": equation})


@generators.TASKS.register("linear_equations")
def linear_equations(split: str, n: int, seed: int, *, difficulty: int | Sequence[int] = 1,
                     unique: bool = False) -> list[Example]:
  """`Solve for x: <equation>.` with an integer answer.

  Args:
    split: "train" or "test".
    n: number of examples.
    seed: random seed.
    difficulty: 1 `x + b = c`, 2 `ax + b = c`, 3 `ax + b = cx + d`, 4 `a(x + b) = cx + d`;
      or several to mix.
    unique: no repeated equations.
  """
  levels = generators.as_levels(difficulty, LEVELS)
  return generators.sample("linear_equations", _draw, levels, split, n, seed, unique)
