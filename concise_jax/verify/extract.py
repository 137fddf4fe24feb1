"""Pure-string extraction of a final answer from untrusted model output.

The small model we train rarely writes the `Answer: N` line it is asked for, so extraction is
lenient: an explicit marker (`\\boxed{}`, then `Answer:` / `the answer is` / GSM8K `####`) wins,
and without one we fall back to the last number in the text.

Everything is linear in the input: the text is sanitised and capped first (`sanitize`), braces are
matched by one scan over brace tokens (10k nested braces cost 10k steps, never a regex
backtrack), and regexes only run on single capped lines with unambiguous patterns.
"""
from fractions import Fraction
import re

from concise_jax.verify import numbers

# Final answers sit at the end of a completion; keep the tail of longer (e.g. 1 MB) outputs.
MAX_COMPLETION_CHARS = 16_384
# Longest answer segment handed on to number parsing or LaTeX comparison.
MAX_ANSWER_CHARS = 512
# How many `answer` mentions to inspect from the end before giving up on the marker.
_MAX_MARKER_TRIES = 8

# C0 control characters (NUL included) except tab and newline, and DEL: deleted.
_CONTROL = {c: None for c in [*range(0, 9), *range(11, 32), 127]}
_BRACE_TOKENS = re.compile(r"\\boxed|\\fbox|\\[{}]|[{}]")
_ANSWER_WORD = re.compile("answer", re.IGNORECASE)
_MARKER_TAIL = re.compile(r"s?[ \t*_]*(?::|=|is\b:?)[ \t*_]*(.*)", re.IGNORECASE)
_LAST_NUMBER = re.compile(
    r"(?<![\w.])-?\\[dt]?frac\{-?\d+\}\{\d+\}"
    r"|(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
    r"|(?<![\w.])-?\.\d+")


def sanitize(text: str, max_chars: int = MAX_COMPLETION_CHARS) -> str:
  """Drops control characters (NUL bytes included) and keeps at most the last `max_chars`."""
  if len(text) > 2 * max_chars:
    text = text[-2 * max_chars:]
  return text.translate(_CONTROL)[-max_chars:]


def _line_at(text: str, start: int) -> str:
  """The rest of the line from `start`, capped to `MAX_ANSWER_CHARS`."""
  end = text.find("\n", start, start + MAX_ANSWER_CHARS)
  return text[start:end if end != -1 else start + MAX_ANSWER_CHARS]


def _rest_or_next_line(text: str, start: int) -> str:
  """The rest of the line, or the next non-empty line when the marker ends its line."""
  rest = _line_at(text, start).strip()
  if rest:
    return rest
  for line in text[start:start + MAX_ANSWER_CHARS].splitlines()[1:]:
    if line.strip():
      return line.strip()
  return ""


def find_boxed(text: str) -> tuple[int, str] | None:
  """The last completed `\\boxed{...}` (or `\\fbox{...}`) as (position, content).

  Nested braces are matched with a stack over brace tokens; escaped `\\{` / `\\}` are literal.
  "Last" means the box whose closing brace comes last, so an outer box beats one nested in it.
  An unclosed box (a truncated completion) is skipped in favour of an earlier closed one.
  """
  if "\\boxed" not in text and "\\fbox" not in text:
    return None
  stack: list[tuple[int, int]] = []  # (macro position or -1, content start)
  macro, brace_at, best = -1, -1, None
  for m in _BRACE_TOKENS.finditer(text):
    token = m.group(0)
    if token in ("\\boxed", "\\fbox"):
      macro, brace_at = m.start(), _skip_spaces(text, m.end())
      if bare := _bare_box_argument(text, m.end()):
        best = (m.start(), bare)
    elif token == "{":
      stack.append((macro if m.start() == brace_at else -1, m.end()))
    elif token == "}" and stack:
      opened_by, start = stack.pop()
      if opened_by != -1:
        best = (opened_by, text[start:m.start()])
  return best


def _skip_spaces(text: str, pos: int, limit: int = 4) -> int:
  """Position of the first non-space character at or after `pos` (at most `limit` spaces)."""
  for _ in range(limit):
    if pos < len(text) and text[pos] == " ":
      pos += 1
  return pos


def _bare_box_argument(text: str, end: int) -> str | None:
  """The argument of `\\boxed 5` (a space, then one token without braces), else None."""
  if end >= len(text) or text[end] != " ":
    return None
  token = text[end:end + MAX_ANSWER_CHARS].strip().split(maxsplit=1)
  if not token or token[0].startswith("{"):
    return None
  return token[0].rstrip("$.,")


def _looks_like_answer(value: str) -> bool:
  """Rules out prose such as "so our answer is correct": needs a digit, LaTeX, or a short token."""
  return bool(value) and (any(c.isdigit() or c in "\\$" for c in value)
                          or len(value.strip(" .()*")) <= 2)


def find_answer_marker(text: str) -> tuple[int, str] | None:
  """The last `Answer: X` / `the answer is X` / `answer = X` as (position, X)."""
  # A case-insensitive regex, not `text.lower()`: lowering can change the length of some
  # Unicode strings and would shift the positions.
  mentions = [m.end() for m in _ANSWER_WORD.finditer(text)][-_MAX_MARKER_TRIES:]
  for end in reversed(mentions):
    m = _MARKER_TAIL.match(_line_at(text, end))
    if m:
      value = m.group(1).strip() or _rest_or_next_line(text, end + m.start(1))
      if _looks_like_answer(value):
        return end - len("answer"), value
  return None


def find_hash_answer(text: str) -> tuple[int, str] | None:
  """The GSM8K-style `#### X` final answer as (position, X)."""
  pos = text.rfind("####")
  if pos == -1:
    return None
  value = _rest_or_next_line(text, pos + 4).lstrip("#").strip()
  return (pos, value) if value else None


def find_last_number(text: str) -> tuple[int, str] | None:
  """The last number token (signs, decimals, `1,234`, `a/b`, `\\frac{a}{b}`) as (position, text).

  A minus sign counts only when it is not a binary minus (`5-3` ends in `3`, `x = -3` in `-3`).
  """
  last = None
  for last in _LAST_NUMBER.finditer(text):
    pass
  return None if last is None else (last.start(), last.group(0))


def extract_answer(text: str) -> str | None:
  """The final-answer segment of a completion, or None when it has no marker and no number.

  Args:
    text: raw model output (any length; it is sanitised and capped here).

  Returns:
    The last `\\boxed{}` content; else the later of an `Answer:` line's rest and the text after
    `####`; else the last number; capped to `MAX_ANSWER_CHARS`. A box outranks a later
    `answer:` because prose after a boxed result ("we may check our answer: ...") is common,
    and a box is the least ambiguous marker a model writes.
  """
  text = sanitize(text)
  found = [find_boxed(text)]
  if not found[0]:
    found = [f for f in (find_answer_marker(text), find_hash_answer(text)) if f]
  if not found:
    found = [find_last_number(text)]
  if not found[0]:
    return None
  return max(found, key=lambda f: f[0])[1][:MAX_ANSWER_CHARS]


def answer_number(segment: str) -> Fraction | None:
  """Reads a number from an answer segment: `18 dollars` → 18, `x = 5` → 5, `\\frac{1}{2}`.

  Tries the whole segment, then the part after the last `=`, then its first number token.
  """
  segment = segment[:MAX_ANSWER_CHARS]
  if (value := numbers.parse_number(segment)) is not None:
    return value
  if "=" in segment:
    segment = segment.rsplit("=", 1)[1]
    if (value := numbers.parse_number(segment)) is not None:
      return value
  return numbers.leading_number(segment)


def extract_number(text: str) -> Fraction | None:
  """The numeric final answer of a completion (see `extract_answer`), or None."""
  segment = extract_answer(text)
  return None if segment is None else answer_number(segment)
