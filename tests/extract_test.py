"""Answer extraction and exact number parsing: normal, tricky and adversarial strings."""
from fractions import Fraction
import time

import pytest

from concise_jax.verify import extract
from concise_jax.verify import numbers


# --- numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("42", 42), ("-7", -7), ("+3", 3), ("0.5", Fraction(1, 2)), (".25", Fraction(1, 4)),
    ("1,234", 1234), ("-1,234,567.5", Fraction(-2469135, 2)), ("3/4", Fraction(3, 4)),
    ("\\frac{1}{2}", Fraction(1, 2)), ("-\\dfrac{3}{4}", Fraction(-3, 4)),
    ("\\frac12", Fraction(1, 2)), ("\\$18.00", 18), ("$5$", 5), ("50\\%", 50), ("50%", 50),
    ("90^\\circ", 90), ("15\\text{ cm}", 15), ("1{,}000", 1000), ("1.5e3", 1500),
    ("\u22123", -3), ("{7}", 7), ("12.", 12),
])
def test_parse_number(text, value):
  assert numbers.parse_number(text) == value


@pytest.mark.parametrize("text", [
    "", "abc", "1/0", "\\frac{1}{0}", "1e999999999", "9" * 300, "2 + 3", "x", "1,23",
])
def test_parse_number_rejects(text):
  assert numbers.parse_number(text) is None


def test_format_number():
  assert numbers.format_number(43.0) == "43"
  assert numbers.format_number(11.5) == "11.5"
  assert numbers.format_number(1.84) == "1.84"
  assert numbers.format_number("1,080") == "1080"
  assert numbers.format_number(Fraction(1, 3)) == "1/3"
  with pytest.raises(ValueError):
    numbers.format_number("many")


def test_leading_number():
  assert numbers.leading_number("18 dollars.") == 18
  assert numbers.leading_number("\\frac{3}{4} cup") == Fraction(3, 4)
  assert numbers.leading_number("no digits") is None
  assert numbers.leading_number("9" * 5000) is None  # would be cut mid-number: refuse


# --- extraction: normal ------------------------------------------------------------------

@pytest.mark.parametrize("completion, segment", [
    ("So 3 + 4 = 7.\nAnswer: 7", "7"),
    ("The answer is 42.", "42."),
    ("**Answer:** 12 apples", "12 apples"),
    ("Final answer:\n  17", "17"),
    ("Janet makes 9 * 2 = 18.\n#### 18", "18"),
    ("We get $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("3 + 5 = 8", "8"),
    ("x = -3", "-3"),
])
def test_extract_answer_normal(completion, segment):
  assert extract.extract_answer(completion) == segment


@pytest.mark.parametrize("completion, value", [
    ("12 + 7 = 19", 19),
    ("Answer: $1,234.50", Fraction(2469, 2)),
    ("The total is 1,080 dollars", 1080),
    ("It costs $18.00.", 18),
    ("Answer: 18 dollars", 18),
    ("Answer: 3 + 4 = 7", 7),
    ("the share is 3/4", Fraction(3, 4)),
    ("x = \\frac{-1}{2}", Fraction(-1, 2)),
    ("Answer: 15 \\text{ cm}", 15),
    ("5 - 3", 3),            # binary minus is not a sign
    ("it drops to -3 degrees", -3),
    ("0.75 of them", Fraction(3, 4)),
    ("no number here", None),
])
def test_extract_number(completion, value):
  assert extract.extract_number(completion) == value


# --- extraction: tricky ------------------------------------------------------------------

def test_boxed_nested_and_escaped_braces():
  assert extract.extract_answer("\\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"
  assert extract.extract_answer("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"
  assert extract.extract_answer("\\boxed {5}") == "5"
  assert extract.extract_answer("so \\boxed 5$") == "5"
  assert extract.extract_answer("\\fbox{9}") == "9"


def test_last_box_wins_and_unclosed_box_falls_back():
  assert extract.extract_answer("\\boxed{1} then \\boxed{2}") == "2"
  assert extract.extract_answer("\\boxed{3} and finally \\boxed{4") == "3"
  assert extract.extract_answer("\\boxed{a \\boxed{b} c}") == "a \\boxed{b} c"  # outer box


def test_box_outranks_later_answer_prose():
  # From MATH-500: prose after the boxed result mentions "answer:".
  text = ("so $\\boxed{44}$.\n"
          "We may check our answer: $17\\cdot 44 = 748$, so our answer is correct.")
  assert extract.extract_answer(text) == "44"


def test_answer_marker_ignores_prose():
  assert extract.extract_answer("The answer is correct, nothing more.") is None
  assert extract.extract_number("The answer is correct. It is 5") == 5
  assert extract.extract_answer("Let me find the answer to this: 3 + 4 is 7") == "7"
  assert extract.extract_answer("Answer: 5\nThe answered question had 9 parts") == "5"


def test_later_of_answer_line_and_hashes_wins():
  assert extract.extract_answer("#### 5\nAnswer: 6") == "6"
  assert extract.extract_answer("Answer: 6\n#### 5") == "5"


def test_control_characters_are_dropped():
  assert extract.extract_number("Answer: 4\x002") == 42
  assert extract.sanitize("a\x00b\x07c\nd\te") == "abc\nd\te"


# --- extraction: adversarial -------------------------------------------------------------

_ADVERSARIAL = [
    "{" * 10_000 + "1" + "}" * 10_000,
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_001,
    "\\boxed{" * 100_000,
    "9" * 1_000_000,
    "1e999999999",
    "\x00" * 1_000_000 + "7",
    "answer " * 200_000,
    "Answer:" + " " * 500_000 + "x",
    " 1," * 300_000,
    "-" * 1_000_000 + "5",
    ("a" * 1000 + "\n") * 1000,
]


@pytest.mark.parametrize("index", range(len(_ADVERSARIAL)))
def test_adversarial_extraction_is_fast(index):
  start = time.perf_counter()
  extract.extract_answer(_ADVERSARIAL[index])
  extract.extract_number(_ADVERSARIAL[index])
  assert time.perf_counter() - start < 1.0  # generous: typical cost is a few milliseconds


def test_adversarial_values():
  assert extract.extract_number("9" * 1_000_000) is None  # too long to be a number we compare
  assert extract.extract_number("\x00" * 1_000_000 + "7") == 7
  assert extract.extract_answer("{" * 10_000 + "}" * 10_000) is None
