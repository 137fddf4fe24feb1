"""Is a completion's final answer correct? One checker per answer kind, chosen by name.

Checkers have the signature `(completion: str, reference: str) -> bool`: `completion` is
untrusted model output, `reference` the trusted dataset answer. The kinds:

  numeric    exact comparison of `fractions.Fraction` values (`18`, `18.00`, `$18` all equal).
  math       LaTeX equivalence (`\\frac{1}{2}` == `0.5`, `(3, \\frac{\\pi}{2})`) via math-verify,
             after exact string and numeric fast paths.
  countdown  the answer is an expression over the given numbers that evaluates to the target;
             the reference reads `TARGET from N1 N2 ...` (see `countdown_reference`).

These functions bound their input sizes but not their CPU time: sympy can be slow on adversarial
LaTeX. Untrusted batches go through `concise_jax.verify.Verifier`, which adds a hard per-item
time limit. Nothing here calls `eval`.
"""
import collections
import re

import math_verify

from concise_jax.registry import Registry
from concise_jax.verify import expression
from concise_jax.verify import extract
from concise_jax.verify import numbers

CHECKERS = Registry("answer kind")

# Limits on a LaTeX answer before it reaches math-verify. MATH-500 answers are at most 53
# characters with bracket depth 2, while math-verify's time grows fast with nesting: `((...1...))`
# 15 deep took ~5 s, 400 characters of `x+x+...` ~0.75 s on our 2-vCPU machine.
MAX_LATEX_CHARS = 200
MAX_NESTING = 6
# Numeric power towers (`10^{10^{10}}`), 7+-digit exponents and factorials of 4+-digit numbers
# make sympy build astronomically large integers before any timeout can fire.
_HUGE_POWER = re.compile(r"\^\s*\{?\s*[+-]?\d{7}|\d\s*\^\s*\{?\s*\d+\s*\}?\s*\^|\d{4}\s*!")
_MATH_DELIMITERS = ("$", "\\(", "\\)", "\\[", "\\]")


def _nesting(text: str) -> int:
  """Deepest nesting of `{ ( [` brackets (one counter for all kinds)."""
  depth = deepest = 0
  for ch in text:
    if ch in "{([":
      depth += 1
      deepest = max(deepest, depth)
    elif ch in "})]":
      depth -= 1
  return deepest


def is_safe_latex(segment: str) -> bool:
  """False for answer segments that could make sympy run away (long, deeply nested, huge powers)."""
  return (len(segment) <= MAX_LATEX_CHARS and _nesting(segment) <= MAX_NESTING
          and _HUGE_POWER.search(segment) is None)


def _strip_math(segment: str) -> str:
  """`$x$.` → `x`; also drops markdown bold (which would read as Python `**` power)."""
  segment = segment.replace("**", "").strip().rstrip(".").strip()
  for delimiter in _MATH_DELIMITERS:
    segment = segment.replace(delimiter, "")
  return segment.strip()


def _canonical_latex(text: str) -> str:
  """A cheap canonical form so identical answers skip sympy: no spaces, `\\dfrac` → `\\frac`."""
  for old, new in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
                   ("\\!", ""), ("\\,", ""), (" ", "")):
    text = text.replace(old, new)
  return text


def math_equal(segment: str, reference: str) -> bool:
  """LaTeX equivalence of two answers by math-verify (sympy); no time bound of its own.

  math-verify's own timeouts use `signal.alarm`, which fails off the main thread, so they are
  off here; `Verifier` bounds time by killing its worker process instead.
  """
  gold = math_verify.parse(f"${reference}$", parsing_timeout=None)
  pred = math_verify.parse(f"${segment}$", parsing_timeout=None)
  return bool(gold and pred and math_verify.verify(gold, pred, timeout_seconds=None))


@CHECKERS.register("numeric")
def numeric(completion: str, reference: str) -> bool:
  """Exact numeric comparison of the extracted final answer with `reference`."""
  expected = numbers.parse_number(reference)
  if expected is None:
    raise ValueError(f"numeric reference is not a number: {reference!r}")
  return extract.extract_number(completion) == expected


@CHECKERS.register("math")
def math(completion: str, reference: str) -> bool:
  """LaTeX-aware comparison of the extracted final answer with `reference` (MATH style)."""
  segment = extract.extract_answer(completion)
  if segment is None:
    return False
  segment, reference = _strip_math(segment), _strip_math(reference)
  if not segment or not is_safe_latex(segment):
    return False
  if _canonical_latex(segment) == _canonical_latex(reference):
    return True
  ours, theirs = numbers.parse_number(segment), numbers.parse_number(reference)
  if ours is not None and theirs is not None:
    return ours == theirs
  return math_equal(segment, reference)


def countdown_reference(target: int, numbers_available: list[int]) -> str:
  """The reference string of a countdown item: `75 from 3 7 25 50`."""
  return f"{target} from {' '.join(str(n) for n in numbers_available)}"


def _parse_countdown_reference(reference: str) -> tuple[int, list[int]]:
  target, _, available = reference.partition(" from ")
  return int(target), [int(n) for n in available.split()]


_EXPRESSION_RUN = re.compile(r"[\d(][\d\s+\-*/()]*")


def _last_expression(segment: str) -> str | None:
  """The last run of digits/operators/parentheses in `segment` that contains an operator."""
  runs = [r.strip() for r in _EXPRESSION_RUN.findall(expression.normalize_operators(segment))]
  runs = [r for r in runs if any(op in r[1:] for op in "+-*/")]
  return runs[-1] if runs else None


def _countdown_segment(completion: str) -> str | None:
  """The `Answer:`/boxed segment if any, else the last line holding an expression."""
  text = extract.sanitize(completion)
  marked = [f for f in (extract.find_boxed(text), extract.find_answer_marker(text)) if f]
  if marked:
    return max(marked, key=lambda f: f[0])[1][:extract.MAX_ANSWER_CHARS]
  for line in reversed(text[-8 * extract.MAX_ANSWER_CHARS:].splitlines()):
    if _last_expression(line[:extract.MAX_ANSWER_CHARS]):
      return line[:extract.MAX_ANSWER_CHARS]
  return None


@CHECKERS.register("countdown")
def countdown(completion: str, reference: str) -> bool:
  """True iff the final expression uses only the given numbers (each at most once) = target.

  Only the last expression of the answer segment counts (`50 + 25 = 75` → `50 + 25`), so a
  chain of partial steps (`8 * 3` after `3 + 5 = 8`) is not accepted: the task asks for one
  expression over the original numbers.
  """
  target, available = _parse_countdown_reference(reference)
  segment = _countdown_segment(completion)
  candidate = None if segment is None else _last_expression(segment)
  result = None if candidate is None else expression.evaluate(candidate)
  if result is None:
    return False
  value, used = result
  unused = collections.Counter(available)
  unused.subtract(used)
  return value == target and min(unused.values(), default=0) >= 0


def is_correct(completion: str, reference: str, kind: str = "numeric") -> bool:
  """Checks one completion against its reference answer (no time bound; see `Verifier`).

  Args:
    completion: untrusted model output, any length (capped internally).
    reference: the dataset's answer string for `kind` (`Example.answer`, or
      `countdown_reference(...)` for countdown items; `reference_of` picks it).
    kind: a registered checker name: "numeric", "math" or "countdown".

  Returns:
    Whether the completion's final answer matches.
  """
  return bool(CHECKERS.get(kind)(completion, reference))


def reference_of(example) -> tuple[str, str]:
  """`(reference, kind)` for an `Example`: its answer and `meta["verify_kind"]` (default numeric).

  Countdown items verify against their numbers and target rather than a single answer string.
  """
  kind = example.meta.get("verify_kind", "numeric")
  if kind == "countdown":
    return countdown_reference(int(example.answer), list(example.meta["numbers"])), kind
  return example.answer, kind


# A bare word (2+ letters not part of a LaTeX command) left after dropping `\text{}`-style
# groups and environment names: `9 (apples)` is prose, which no checker can compare with.
_BARE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_LATEX_WORD_GROUPS = re.compile(
    r"\\(?:begin|end|operatorname|mathbf|mathrm|mathit|textbf|textrm|text|mbox)\{[^}]*\}")


def _numeric_reference_problem(reference: str) -> str | None:
  return None if numbers.parse_number(reference) is not None else "is not a number"


def _math_reference_problem(reference: str) -> str | None:
  segment = _strip_math(reference)
  if not segment:
    return "is empty"
  if not is_safe_latex(segment):
    return f"is too long or too deeply nested for the checker (> {MAX_LATEX_CHARS} characters " \
           f"or > {MAX_NESTING} brackets deep)"
  if _BARE_WORD.search(_LATEX_WORD_GROUPS.sub(" ", segment)):
    return "holds prose (wrap words in \\text{...} if they are the answer)"
  return None


def _countdown_reference_problem(reference: str) -> str | None:
  try:
    _parse_countdown_reference(reference)
  except ValueError:
    return "is not 'TARGET from N1 N2 ...'"
  return None


# answer kind → the check a trusted reference answer must pass when its dataset loads.
_REFERENCE_CHECKS = {"numeric": _numeric_reference_problem, "math": _math_reference_problem,
                     "countdown": _countdown_reference_problem}


def reference_problem(reference: str, kind: str = "numeric") -> str | None:
  """Why `kind`'s checker cannot use `reference` as a gold answer, or None if it can.

  A reference the checker cannot parse makes every completion "incorrect", so the reward is a
  constant zero with no warning; datasets call this on every row when they load.
  """
  if not isinstance(reference, str):
    return f"{reference!r} is not a string"
  check = _REFERENCE_CHECKS.get(kind)
  if check is None:
    return f"unknown answer kind {kind!r}; valid choices: {', '.join(CHECKERS.names())}"
  problem = check(reference)
  return None if problem is None else f"{kind} reference {reference[:80]!r} {problem}"
