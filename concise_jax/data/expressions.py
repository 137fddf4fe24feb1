"""Arithmetic expression values that carry their own minimal-parentheses text.

Generators build expressions bottom-up with `combine`, so the answer is computed exactly (with
`Fraction`) alongside the text the model sees; the text gets parentheses only where operator
precedence needs them (`(2 + 3) * 4`, `10 - (4 - 1)`, but `2 + 3 * 4`).
"""
import dataclasses
from fractions import Fraction

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_ATOM = 3


@dataclasses.dataclass(frozen=True)
class Expr:
  """An expression's text, exact value, and the precedence of its top operator."""
  text: str
  value: Fraction
  precedence: int = _ATOM

  @property
  def is_integer(self) -> bool:
    return self.value.denominator == 1


def leaf(n: int) -> Expr:
  """A literal; negative literals are parenthesised so `3 - (-2)` reads unambiguously."""
  return Expr(str(n) if n >= 0 else f"({n})", Fraction(n))


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
  if op == "+":
    return a + b
  if op == "-":
    return a - b
  if op == "*":
    return a * b
  return a / b


def combine(left: Expr, op: str, right: Expr) -> Expr | None:
  """`left op right` with minimal parentheses; None for division by zero.

  The right operand keeps its parentheses at equal precedence only under `-` and `/`
  (`a - (b + c)`, `a / (b * c)`); under `+` and `*` regrouping does not change the value.
  """
  if op == "/" and right.value == 0:
    return None
  prec = PRECEDENCE[op]
  left_text = left.text if left.precedence >= prec else f"({left.text})"
  keep_bare = right.precedence > prec or (right.precedence == prec and op in "+*")
  right_text = right.text if keep_bare else f"({right.text})"
  return Expr(f"{left_text} {op} {right_text}", _apply(op, left.value, right.value), prec)


def format_value(value: Fraction) -> str:
  """`7`, `-3`, or `7/2` for a non-integer."""
  if value.denominator == 1:
    return str(value.numerator)
  return f"{value.numerator}/{value.denominator}"
