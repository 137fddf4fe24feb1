"""Arithmetic tasks: `What is 3 + 5?` up to multi-digit mixed operations with parentheses.

Level 1 (single-digit addition) is where SmolLM2-135M starts at roughly 17-34% accuracy, so a
run can measure progress from the first step; higher levels add digits, operators, operands
and parentheses. Answers are always integers: a division's dividend is built as a multiple of
its divisor.
"""
import dataclasses
import random
from typing import Sequence

from concise_jax.data import expressions
from concise_jax.data import generators
from concise_jax.data.example import Example
from concise_jax.data.expressions import Expr


@dataclasses.dataclass(frozen=True)
class Level:
  """One difficulty level.

  Attributes:
    digits: (min, max) digits of each literal.
    ops: operators to draw from.
    operands: number of literals.
    parens: whether expressions may need parentheses.
    negative: whether intermediate results and the answer may be negative.
    max_value: bound on the magnitude of every intermediate result (keeps products of
      multi-digit literals from jumping a level's difficulty).
  """
  digits: tuple[int, int]
  ops: str
  operands: int
  parens: bool = False
  negative: bool = False
  max_value: int = 1_000


LEVELS = {
    1: Level((1, 1), "+", 2),                                  # 3 + 5
    2: Level((1, 1), "+-", 2),                                 # 9 - 4
    3: Level((2, 2), "+-", 2),                                 # 47 + 38
    4: Level((1, 2), "+-*", 2),                                # 7 * 12
    5: Level((1, 2), "+-*/", 3),                               # 6 + 48 / 8
    6: Level((1, 3), "+-*/", 3, parens=True, max_value=5_000),               # (12 + 150) / 9
    7: Level((1, 3), "+-*/", 4, parens=True, negative=True, max_value=20_000),  # 25 - 14 * (3 + 86)
    8: Level((2, 4), "+-*/", 5, parens=True, negative=True, max_value=100_000),
}
_MAX_QUOTIENT = 9
_TRIES = 100


def _literal(rng: random.Random, level: Level) -> Expr:
  digits = rng.randint(*level.digits)
  return expressions.leaf(rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1))


def _divide(rng: random.Random, right: Expr) -> Expr | None:
  """`right.value * q / right` for a random quotient q: division that is always exact."""
  if not right.is_integer or abs(right.value) < 2:
    return None
  return expressions.combine(expressions.leaf(int(right.value) * rng.randint(2, _MAX_QUOTIENT)),
                             "/", right)


def _build(rng: random.Random, operands: int, level: Level) -> Expr | None:
  """A random expression tree with `operands` literals; None when a choice was invalid."""
  if operands == 1:
    return _literal(rng, level)
  op = rng.choice(level.ops)
  if op == "/":
    right = _build(rng, operands - 1, level)
    expr = None if right is None else _divide(rng, right)
    return expr if expr is not None and abs(expr.value) <= level.max_value else None
  split = rng.randint(1, operands - 1)
  left, right = _build(rng, split, level), _build(rng, operands - split, level)
  if left is None or right is None:
    return None
  if op == "-" and not level.negative and left.value < right.value:
    left, right = right, left
  expr = expressions.combine(left, op, right)
  return expr if abs(expr.value) <= level.max_value else None


def _acceptable(expr: Expr | None, level: Level) -> bool:
  return (expr is not None and expr.is_integer and (level.parens or "(" not in expr.text)
          and (level.negative or expr.value >= 0))


def draw_expression(rng: random.Random, difficulty: int) -> Expr:
  """A random expression at `difficulty` (rejection sampling over random trees)."""
  level = LEVELS[difficulty]
  for _ in range(_TRIES):
    expr = _build(rng, level.operands, level)
    if _acceptable(expr, level):
      return expr
  raise RuntimeError(f"no acceptable expression at level {difficulty} in {_TRIES} tries")


def _draw(rng: random.Random, difficulty: int) -> generators.Problem:
  expr = draw_expression(rng, difficulty)
  return generators.Problem(key=expr.text, prompt=f"What is {expr.text}?",
                            answer=expressions.format_value(expr.value), difficulty=difficulty,
                            meta={"expression": expr.text})


@generators.TASKS.register("arithmetic")
def arithmetic(split: str, n: int, seed: int, *, difficulty: int | Sequence[int] = 1,
               unique: bool = False) -> list[Example]:
  """Arithmetic questions `What is <expression>?` with integer answers.

  Args:
    split: "train" or "test".
    n: number of examples.
    seed: random seed.
    difficulty: a level of `LEVELS` (1 = single-digit addition ... 8 = five multi-digit
      operands, all four operators, parentheses, negative results), or several to mix.
    unique: no repeated problems (small levels have few: level 1 has 100 in all).
  """
  levels = generators.as_levels(difficulty, list(LEVELS))
  return generators.sample("arithmetic", _draw, levels, split, n, seed, unique)


def _fixed_level(name: str, level: int):
  """Registers `name` as arithmetic at one level, e.g. `add_1digit` for level 1."""
  def task(split: str, n: int, seed: int, *, unique: bool = False) -> list[Example]:
    return generators.sample(name, _draw, [level], split, n, seed, unique)
  task.__doc__ = f"Arithmetic at fixed level {level}: {LEVELS[level]}."
  generators.TASKS.register(name)(task)


_fixed_level("add_1digit", 1)
_fixed_level("addsub_1digit", 2)
_fixed_level("addsub_2digit", 3)
