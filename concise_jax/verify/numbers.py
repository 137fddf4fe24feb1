"""Exact parsing of short numeric answer strings into `fractions.Fraction`.

Model output is untrusted, so nothing here evaluates expressions. Every input is length-capped
before a regex touches it and every pattern is unambiguous (no nested quantifiers that can
backtrack), so the cost is linear in an already small string. Exponents in scientific notation
are limited to three digits: `1e999999999` would otherwise build a billion-digit integer.
"""
from decimal import Decimal, InvalidOperation
from fractions import Fraction
import re

# An answer segment longer than this is not a number we want to compare (and Python refuses to
# convert integers above ~4300 digits anyway).
MAX_NUMBER_CHARS = 200

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SLASH = re.compile(r"([+-]?\d+)/(\d+)")
_LATEX_FRAC = re.compile(r"([+-]?)\\[dt]?frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
_LATEX_FRAC_SHORT = re.compile(r"([+-]?)\\[dt]?frac(\d)(\d)")  # \frac12
_LEADING_NUMBER = re.compile(
    r"[+-]?\\[dt]?frac\{[+-]?\d+\}\{[+-]?\d+\}"
    r"|[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|[+-]?\.\d+")

# LaTeX and currency noise that never changes a number's value. Order matters: `\!` before `!`.
_NOISE = ("\\$", "$", "\\!", "\\,", "\\;", "\\:", "\\ ", "{,}", "\\left", "\\right", "\\%", "%",
          "^\\circ", "^{\\circ}", "\\circ", "\\degree", "°", "€", "£", "¥")
_TEXT_MACROS = ("\\text", "\\textbf", "\\mathrm", "\\mbox", "\\textrm", "\\mathbf")


def _strip_text_macros(s: str) -> str:
  """Drops `\\text{...}`-style groups (units such as `\\text{ cm}`); unbalanced input is kept."""
  for macro in _TEXT_MACROS:
    start = s.find(macro + "{")
    while start != -1:
      end = s.find("}", start)
      if end == -1:
        break
      s = s[:start] + " " + s[end + 1:]
      start = s.find(macro + "{")
  return s


def normalize(s: str) -> str:
  """Removes currency signs, LaTeX spacing, percent and degree marks and unit macros."""
  s = _strip_text_macros(s)
  for token in _NOISE:
    s = s.replace(token, " " if token.startswith("\\") else "")
  s = s.replace("\u2212", "-").strip().rstrip(".")
  while s.startswith("{") and s.endswith("}") and s.count("{") == 1:
    s = s[1:-1].strip()
  return s.replace(" ", "")


def _fraction(num: str, den: str) -> Fraction | None:
  return None if int(den) == 0 else Fraction(int(num), int(den))


def parse_number(text: str) -> Fraction | None:
  """Parses a whole string as one exact number, or returns None.

  Accepts integers, signs, decimals, thousands separators (`1,234`), `a/b`, `\\frac{a}{b}`,
  `\\dfrac`, scientific notation with small exponents, and tolerates `$`, `%`, degrees and
  `\\text{unit}` groups around the number.

  Args:
    text: a short answer string (e.g. the inside of `\\boxed{}`).

  Returns:
    The exact value, or None if `text` is not a single number (or is too long to be one).
  """
  if len(text) > MAX_NUMBER_CHARS:
    return None
  s = normalize(text)
  if not s:
    return None
  if _THOUSANDS.fullmatch(s):
    s = s.replace(",", "")
  if _DECIMAL.fullmatch(s):
    try:
      return Fraction(Decimal(s))
    except (InvalidOperation, ValueError):
      return None
  for pattern in (_LATEX_FRAC, _LATEX_FRAC_SHORT):
    if m := pattern.fullmatch(s):
      value = _fraction(m.group(2), m.group(3))
      return None if value is None else (-value if m.group(1) == "-" else value)
  if m := _SLASH.fullmatch(s):
    return _fraction(m.group(1), m.group(2))
  return None


def leading_number(text: str) -> Fraction | None:
  """The first number token of `text` (e.g. `18` in `18 dollars.`), or None.

  Only the first `4 * MAX_NUMBER_CHARS` characters are searched; a token running into that cut
  could be the head of a longer number, so it is rejected rather than misread.
  """
  window = text[:4 * MAX_NUMBER_CHARS]
  m = _LEADING_NUMBER.search(window)
  if m is None or (m.end() == len(window) < len(text)):
    return None
  return parse_number(m.group(0))


def format_number(value: Fraction | int | float | str) -> str:
  """Canonical text for a reference answer: `43.0` → `43`, `0.50` → `0.5`, `1/3` stays `1/3`."""
  if isinstance(value, float):
    value = Decimal(repr(value))
  if isinstance(value, str):
    parsed = parse_number(value)
    if parsed is None:
      raise ValueError(f"not a number: {value!r}")
    value = parsed
  value = Fraction(value)
  if value.denominator == 1:
    return str(value.numerator)
  as_decimal = Decimal(value.numerator) / Decimal(value.denominator)
  if Fraction(as_decimal) == value:
    return format(as_decimal.normalize(), "f")
  return f"{value.numerator}/{value.denominator}"
