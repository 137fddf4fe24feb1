"""Built-in tasks: answers re-derived by independent computations, determinism, disjoint splits."""
import ast
import collections
from fractions import Fraction
import operator
import re

import pytest
import sympy
from sympy.parsing import sympy_parser

from concise_jax import data
from concise_jax.data import arithmetic
from concise_jax.data import countdown
from concise_jax.data import expressions
from concise_jax.data import generators
from concise_jax.data import linear_equations
from concise_jax.data import word_problems
from concise_jax.verify import verify

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


def _ast_value(text: str) -> Fraction:
  """Exact value of a trusted generated expression via Python's own parser (not the library's)."""
  def walk(node):
    if isinstance(node, ast.Expression):
      return walk(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
      return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
      return -walk(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
      return _BINARY[type(node.op)](walk(node.left), walk(node.right))
    raise ValueError(f"unexpected node {ast.dump(node)}")
  return walk(ast.parse(text, mode="eval"))


def _literals(text: str) -> list[int]:
  return [int(t) for t in re.findall(r"\d+", text)]


# --- registry contract: every task, every split ------------------------------------------

@pytest.mark.parametrize("name", generators.TASKS.names())
def test_task_contract(name):
  examples = data.generate(name, "train", 30, seed=3)
  assert len(examples) == 30
  assert len({e.id for e in examples}) == 30
  assert all(e.split == "train" and e.source == name and e.prompt and e.answer for e in examples)
  assert examples == data.generate(name, "train", 30, seed=3)  # deterministic
  assert examples != data.generate(name, "train", 30, seed=4)


@pytest.mark.parametrize("name", generators.TASKS.names())
def test_train_and_test_problems_are_disjoint(name):
  train = data.generate(name, "train", 300, seed=0)
  test = data.generate(name, "test", 300, seed=0)
  train_keys = {e.meta.get("expression") or e.meta.get("equation") or e.prompt for e in train}
  test_keys = {e.meta.get("expression") or e.meta.get("equation") or e.prompt for e in test}
  assert not train_keys & test_keys
  assert all(e.split == "test" for e in test)


def test_split_is_a_fixed_fraction_of_the_problem_space():
  keys = [f"{a} + {b}" for a in range(10) for b in range(10)]
  n_test = sum(generators.split_of(k) == "test" for k in keys)
  assert 10 <= n_test <= 30  # ~20% of 100 single-digit additions
  unique_test = data.generate("add_1digit", "test", n_test, seed=0, unique=True)
  assert {e.meta["expression"] for e in unique_test} == {
      k for k in keys if generators.split_of(k) == "test"}
  with pytest.raises(ValueError, match="distinct test problems"):
    data.generate("add_1digit", "test", n_test + 1, seed=0, unique=True)


def test_unknown_difficulty_and_split_are_rejected():
  with pytest.raises(ValueError, match="valid levels"):
    data.generate("arithmetic", "train", 5, 0, difficulty=99)
  with pytest.raises(ValueError, match="unknown split"):
    data.generate("arithmetic", "validation", 5, 0)


# --- arithmetic ------------------------------------------------------------------------

def test_expression_text_uses_minimal_parentheses():
  two, three, four, ten = (expressions.leaf(v) for v in (2, 3, 4, 10))
  e = expressions.combine(expressions.combine(two, "+", three), "*", four)
  assert (e.text, e.value) == ("(2 + 3) * 4", 20)
  e = expressions.combine(ten, "-", expressions.combine(four, "-", expressions.leaf(1)))
  assert (e.text, e.value) == ("10 - (4 - 1)", 7)
  e = expressions.combine(two, "+", expressions.combine(three, "*", four))
  assert (e.text, e.value) == ("2 + 3 * 4", 14)
  assert expressions.combine(two, "/", expressions.leaf(0)) is None


def test_add_1digit_is_single_digit_addition():
  for e in data.generate("add_1digit", "train", 200, seed=0):
    a, b = map(int, re.fullmatch(r"What is (\d) \+ (\d)\?", e.prompt).groups())
    assert int(e.answer) == a + b and e.difficulty == 1


@pytest.mark.parametrize("level", sorted(arithmetic.LEVELS))
def test_arithmetic_answers_match_python_evaluation(level):
  spec = arithmetic.LEVELS[level]
  for e in data.generate("arithmetic", "train", 100, seed=1, difficulty=level):
    expr = re.fullmatch(r"What is (.+)\?", e.prompt).group(1)
    value = _ast_value(expr)
    assert value.denominator == 1 and e.answer == str(value.numerator)
    assert len(_literals(expr)) == spec.operands
    assert set(re.findall(r" ([-+*/]) ", expr)) <= set(spec.ops)
    assert spec.parens or "(" not in expr
    assert spec.negative or value >= 0


def test_arithmetic_mixes_levels():
  examples = data.generate("arithmetic", "train", 200, seed=0, difficulty=(1, 5))
  assert {e.difficulty for e in examples} == {1, 5}


# --- word problems ---------------------------------------------------------------------

_SENTENCES = (  # (pattern, update): an independent reading of the templates' English
    (r"has (\d+) \w+\.", lambda v, a: a),
    (r"gets (\d+) more", lambda v, k: v + k),
    (r"gives (\d+) \w+ to a ", lambda v, k: v - k),
    (r"buys (\d+) packs with (\d+)", lambda v, g, m: v + g * m),
    (r"gives (\d+) \w+ to each of (\d+) friends", lambda v, m, g: v - g * m),
    (r"doubles", lambda v: v * 2),
    (r"triples", lambda v: v * 3),
    (r"into (\d+) boxes and keeps one", lambda v, k: v / k),
)


def _solve_word_problem(prompt: str) -> Fraction:
  value = None
  for sentence in re.split(r"(?<=[.?])\s+", prompt)[:-1]:
    matches = [(p, f) for p, f in _SENTENCES if re.search(p, sentence)]
    assert len(matches) == 1, sentence
    pattern, update = matches[0]
    args = [int(g) for g in re.search(pattern, sentence).groups()]
    value = update(value, *args) if value is not None else Fraction(args[0])
  return value


@pytest.mark.parametrize("level", word_problems.LEVELS)
def test_word_problem_answers_match_reading_the_text(level):
  for e in data.generate("word_problems", "train", 60, seed=2, difficulty=level):
    assert _solve_word_problem(e.prompt) == int(e.answer), e.prompt
    assert _ast_value(e.meta["expression"]) == int(e.answer)
    assert e.prompt.count(".") == level + 1 and e.prompt.endswith("have now?")
    assert int(e.answer) >= 0


def test_word_problem_golden():
  prompt = ("Ava has 12 stickers. She gives 5 stickers to a friend. She buys 2 packs with 3 "
            "stickers in each pack. Then she doubles the number of stickers she has. "
            "How many stickers does Ava have now?")
  assert _solve_word_problem(prompt) == 26  # ((12 - 5) + 2 * 3) * 2


# --- linear equations ------------------------------------------------------------------

_TRANSFORMS = sympy_parser.standard_transformations + (
    sympy_parser.implicit_multiplication_application,)


@pytest.mark.parametrize("level", linear_equations.LEVELS)
def test_linear_equation_answers_match_sympy(level):
  x = sympy.Symbol("x")
  for e in data.generate("linear_equations", "train", 40, seed=5, difficulty=level):
    lhs, rhs = re.fullmatch(r"Solve for x: (.+) = (.+)\.", e.prompt).groups()
    equation = sympy.Eq(sympy_parser.parse_expr(lhs, transformations=_TRANSFORMS),
                        sympy_parser.parse_expr(rhs, transformations=_TRANSFORMS))
    assert sympy.solve(equation, x) == [int(e.answer)], e.prompt


def test_linear_equation_rendering():
  assert linear_equations._term(1) == "x" and linear_equations._term(-1) == "-x"
  assert linear_equations._plus(-4) == " - 4" and linear_equations._plus(0) == ""


# --- countdown -------------------------------------------------------------------------

@pytest.mark.parametrize("level", countdown.LEVELS)
def test_countdown_solutions_reach_the_target(level):
  for e in data.generate("countdown", "train", 40, seed=7, difficulty=level):
    numbers, target, solution = e.meta["numbers"], e.meta["target"], e.meta["solution"]
    assert len(numbers) == level + 2 and str(target) == e.answer
    assert _ast_value(solution) == target and 10 <= target <= 999 and target not in numbers
    used, offered = collections.Counter(_literals(solution)), collections.Counter(numbers)
    assert not used - offered  # each number at most as often as it is offered
    reference, kind = verify.reference_of(e)
    assert kind == "countdown"
    assert verify.is_correct(f"Answer: {solution}", reference, kind)
    assert not verify.is_correct(f"Answer: {target}", reference, kind)
