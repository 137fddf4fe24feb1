"""A tiny exact evaluator for `+ - * /` expressions over integers (countdown answers).

Model output is untrusted: this is a recursive-descent parser over a bounded token list, never
`eval`. Values are `fractions.Fraction`, so `7 / 2 * 2` is exactly 7; division by zero or any
syntax error gives None. Limits on the number of tokens, nesting depth and literal length keep
the work tiny whatever the input.
"""
from fractions import Fraction
import re

MAX_TOKENS = 64
MAX_DEPTH = 16
MAX_LITERAL_DIGITS = 6

_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")
# Spellings of the operators a model may write, mapped to the ASCII ones.
_OPERATOR_SPELLINGS = {"\\times": "*", "\\cdot": "*", "×": "*", "·": "*", "\\div": "/", "÷": "/",
                       "−": "-", "\\left": "", "\\right": "", "$": "", "\\(": "", "\\)": ""}


class _Invalid(Exception):
  """Raised inside the parser for any input that is not a valid bounded expression."""


def normalize_operators(text: str) -> str:
  """Maps LaTeX and Unicode operator spellings (`\\times`, `÷`, `−`) to `* / -`."""
  for spelling, ascii_op in _OPERATOR_SPELLINGS.items():
    text = text.replace(spelling, ascii_op)
  return text


def _tokenize(text: str) -> list[str]:
  tokens, pos, text = [], 0, text.rstrip()
  while pos < len(text):
    m = _TOKEN.match(text, pos)
    if m is None or len(tokens) >= MAX_TOKENS:
      raise _Invalid
    tokens.append(m.group(1))
    pos = m.end()
  return tokens


class _Parser:
  """expr := term (('+'|'-') term)*;  term := factor (('*'|'/') factor)*;
  factor := '-' factor | number | '(' expr ')'."""

  def __init__(self, tokens: list[str]):
    self.tokens, self.pos, self.depth, self.literals = tokens, 0, 0, []

  def peek(self) -> str | None:
    return self.tokens[self.pos] if self.pos < len(self.tokens) else None

  def take(self) -> str:
    if self.pos >= len(self.tokens):
      raise _Invalid
    self.pos += 1
    return self.tokens[self.pos - 1]

  def expr(self) -> Fraction:
    value = self.term()
    while self.peek() in ("+", "-"):
      value = value + self.term() if self.take() == "+" else value - self.term()
    return value

  def term(self) -> Fraction:
    value = self.factor()
    while self.peek() in ("*", "/"):
      op, rhs = self.take(), self.factor()
      if op == "/" and rhs == 0:
        raise _Invalid
      value = value * rhs if op == "*" else value / rhs
    return value

  def factor(self) -> Fraction:
    self.depth += 1
    if self.depth > MAX_DEPTH:
      raise _Invalid
    token = self.take()
    if token == "-":
      value = -self.factor()
    elif token == "(":
      value = self.expr()
      if self.take() != ")":
        raise _Invalid
    elif token.isdigit() and len(token) <= MAX_LITERAL_DIGITS:
      self.literals.append(int(token))
      value = Fraction(int(token))
    else:
      raise _Invalid
    self.depth -= 1
    return value


def evaluate(text: str) -> tuple[Fraction, list[int]] | None:
  """Exact value of an arithmetic expression and the integer literals it uses, or None.

  Args:
    text: e.g. `(25 - 5) * 3 + 15`; LaTeX/Unicode operators are accepted.

  Returns:
    `(value, literals)` with literals in order of appearance, or None for anything invalid
    (syntax error, division by zero, too long, too deep, decimals).
  """
  try:
    tokens = _tokenize(normalize_operators(text))
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.pos != len(tokens):
      return None
    return value, parser.literals
  except _Invalid:
    return None
