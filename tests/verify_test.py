"""Answer checkers and the process-pool `Verifier` (hard per-item time bound)."""
import time

import pytest

from concise_jax.data.example import Example
from concise_jax.verify import expression
from concise_jax.verify import verify
from concise_jax.verify.pool import Verifier

# math-verify/sympy takes ~18 s on this one and minutes on the integral: real runaway inputs
# that pass the cheap guards, so only the worker timeout can stop them.
SLOW_SUM = "\\boxed{\\sum_{k=1}^{999999} k^{999}}"
SLOW_INTEGRAL = "\\boxed{\\int_0^1 x^{99999} e^{x} dx}"


@pytest.fixture(scope="module")
def verifier():
  with Verifier(num_workers=2, timeout_s=2.0) as v:
    yield v


# --- numeric -----------------------------------------------------------------------------

@pytest.mark.parametrize("completion, reference, expected", [
    ("Answer: 72", "72", True),
    ("She sold 48 + 24 = 72 clips.", "72", True),
    ("#### 1,080", "1080", True),
    ("The total is $1,080.00", "1080", True),
    ("It is 0.5", "1/2", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("Answer: 43", "43.0", True),
    ("Answer: -5", "-5", True),
    ("Answer: 5", "-5", False),
    ("Answer: 72.01", "72", False),
    ("12 + 7 = 9", "19", False),   # the 135M model's classic
    ("I don't know", "3", False),
    ("", "3", False),
])
def test_numeric(completion, reference, expected):
  assert verify.is_correct(completion, reference, "numeric") is expected


def test_numeric_reference_must_be_a_number():
  with pytest.raises(ValueError, match="not a number"):
    verify.is_correct("Answer: 3", "three", "numeric")


# --- math --------------------------------------------------------------------------------

@pytest.mark.parametrize("completion, reference, expected", [
    ("so $\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", True),
    ("\\boxed{0.5}", "\\frac12", True),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", True),
    ("\\boxed{1+x^2}", "x^2+1", True),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("\\boxed{90^\\circ}", "90", True),
    ("The answer is $\\frac{\\sqrt{3}}{2}$.", "\\frac{\\sqrt3}{2}", True),
    ("\\boxed{\\frac{1}{3}}", "0.5", False),
    ("\\boxed{x^2-1}", "x^2+1", False),
    ("nothing", "1", False),
])
def test_math(completion, reference, expected):
  assert verify.is_correct(completion, reference, "math") is expected


def test_unsafe_latex_is_rejected_before_sympy():
  assert not verify.is_safe_latex("(" * 10 + "1" + ")" * 10)
  assert not verify.is_safe_latex("10^{10^{10}}")
  assert not verify.is_safe_latex("2^{99999999}")
  assert not verify.is_safe_latex("x+" * 200)
  assert verify.is_safe_latex("\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]")


# --- countdown ---------------------------------------------------------------------------

@pytest.mark.parametrize("completion, expected", [
    ("Answer: (25 - 5) * 3 + 15", False),          # 5 is not offered
    ("Answer: 50 + 25", True),
    ("50 + 25 = 75", True),
    ("We get 3 × 25 = 75.", True),
    ("\\boxed{25 \\times 3}", True),
    ("Answer: 75", False),                        # the bare target is no expression
    ("Answer: 50 + 50 - 25", False),              # 50 offered once
    ("Answer: 7 * 3 + 50", False),                # 71
    ("Answer: (50 + 25) / (7 - 7)", False),       # division by zero
    ("Answer: 100 - 25", False),                  # 100 not offered
])
def test_countdown(completion, expected):
  assert verify.is_correct(completion, verify.countdown_reference(75, [3, 7, 25, 50]),
                           "countdown") is expected


def test_expression_evaluator():
  assert expression.evaluate("(25 - 5) * 3 + 15") == (75, [25, 5, 3, 15])
  assert expression.evaluate("7 / 2 * 2") == (7, [7, 2, 2])
  assert expression.evaluate("-(3 - 5)") == (2, [3, 5])
  for bad in ("1 / 0", "2 +", "(1", "1 1", "2 ** 3", "1.5 + 1", "import os",
              "(" * 40 + "1" + ")" * 40, "+".join(["1"] * 100), "1234567 + 1"):
    assert expression.evaluate(bad) is None, bad


# --- dispatch and references -------------------------------------------------------------

def test_reference_of_example():
  numeric = Example("a", "What is 2 + 2?", "4", 1, "test", "arithmetic")
  math_item = Example("b", "p", "\\frac12", 3, "test", "math", {"verify_kind": "math"})
  puzzle = Example("c", "p", "75", 1, "test", "countdown",
                   {"verify_kind": "countdown", "numbers": [3, 7, 25, 50]})
  assert verify.reference_of(numeric) == ("4", "numeric")
  assert verify.reference_of(math_item) == ("\\frac12", "math")
  assert verify.reference_of(puzzle) == ("75 from 3 7 25 50", "countdown")


def test_unknown_kind_lists_valid_ones():
  with pytest.raises(KeyError, match="countdown, math, numeric"):
    verify.is_correct("1", "1", "fuzzy")


# --- Verifier ----------------------------------------------------------------------------

def test_verifier_agrees_with_is_correct(verifier):
  completions = ["Answer: 7", "\\boxed{\\frac{1}{2}}", "50 + 25", "no", "#### 1,080", "x"]
  references = ["7", "0.5", "75 from 3 25 50", "1", "1080", "2"]
  kinds = ["numeric", "math", "countdown", "numeric", "numeric", "math"]
  expected = [verify.is_correct(c, r, k) for c, r, k in zip(completions, references, kinds)]
  assert expected == [True, True, True, False, True, False]
  assert verifier.verify(completions, references, kinds) == expected


def test_verifier_submit_overlaps_and_keeps_order(verifier):
  first = verifier.submit([f"Answer: {i}" for i in range(200)], [str(i) for i in range(200)])
  second = verifier.submit(["Answer: 1", "Answer: 2"], ["1", "3"])
  assert second.result(timeout=30) == [True, False]
  assert first.result(timeout=30) == [True] * 200
  assert verifier.verify([], []) == []


def test_verifier_rejects_bad_batches(verifier):
  with pytest.raises(ValueError, match="2 completions but 1 references"):
    verifier.submit(["a", "b"], ["1"])
  with pytest.raises(KeyError, match="valid choices"):
    verifier.submit(["a"], ["1"], "fuzzy")


def test_verifier_times_out_runaway_items_and_recovers():
  with Verifier(num_workers=1, timeout_s=1.0) as v:
    start = time.perf_counter()
    result = v.verify([SLOW_SUM, "\\boxed{2}", SLOW_INTEGRAL, "Answer: 3"],
                      ["7", "2", "7", "3"], "math")
    elapsed = time.perf_counter() - start
    assert result == [False, True, False, True]
    assert elapsed < 10.0  # two 1 s timeouts plus a worker restart each
    assert v.verify(["Answer: 5"], ["5"]) == [True]  # the replacement worker is healthy


def test_closed_verifier_refuses_work():
  v = Verifier(num_workers=1)
  v.close()
  with pytest.raises(RuntimeError, match="closed"):
    v.submit(["1"], ["1"])


_ADVERSARIAL = [
    "\\boxed{10^{10^{10^{10}}}}",
    "\\boxed{2^{99999999999}}",
    "1e999999999",
    "\\boxed{9" + "9" * 100_000 + "}",
    "{" * 10_000 + "}" * 10_000,
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_001,
    "\\boxed{" + "(" * 5_000 + "1" + ")" * 5_000 + "}",
    "x" * 1_000_000,
    "7" * 1_000_000,
    "\x00" * 1_000_000,
    "\\boxed{\x00\x00}",
    "\\boxed{99999999!}",
    SLOW_SUM,
]


@pytest.mark.parametrize("kind", ["numeric", "math"])
def test_adversarial_batch_is_incorrect_within_the_bound(verifier, kind):
  start = time.perf_counter()
  result = verifier.verify(_ADVERSARIAL, ["3"] * len(_ADVERSARIAL), kind)
  elapsed = time.perf_counter() - start
  assert result == [False] * len(_ADVERSARIAL)
  assert elapsed < 10.0  # safety bound (one 2 s timeout at most), not a benchmark
