"""Multi-step arithmetic word problems built from sentence templates.

A problem starts with a count (`Ava has 12 stickers.`), applies `difficulty` steps (buy more,
give some away, buy packs, share equally, double, ...) and asks for the final count. The answer
is computed alongside the text, and `meta["expression"]` records it as one parenthesised
expression over the numbers in the prompt (tests recompute it independently).
"""
import random
from typing import Callable, Sequence

from concise_jax.data import generators
from concise_jax.data.example import Example

LEVELS = (1, 2, 3, 4, 5)  # number of steps after the starting count

_PEOPLE = (("Ava", "She", "her"), ("Ben", "He", "his"), ("Chloe", "She", "her"),
           ("Dan", "He", "his"), ("Emma", "She", "her"), ("Finn", "He", "his"),
           ("Grace", "She", "her"), ("Hugo", "He", "his"), ("Iris", "She", "her"),
           ("Jack", "He", "his"), ("Lena", "She", "her"), ("Omar", "He", "his"))
_ITEMS = ("apples", "marbles", "stickers", "cookies", "pencils", "books", "stamps", "shells",
          "cards", "coins")
_FRIENDS = ("a friend", "a neighbour", "a classmate", "a cousin")

# A step: (rng, count, person) -> (sentence, new count, expression transform), or None if it
# does not apply to this count (nothing left to give, no equal share).
Step = Callable[[random.Random, int, tuple], tuple[str, int, Callable[[str], str]] | None]


def _buy(rng, count, person):
  k = rng.randint(2, 20)
  return f"{person[1]} gets {k} more {{items}}.", count + k, lambda e: f"({e} + {k})"


def _give(rng, count, person):
  if count < 3:
    return None
  k = rng.randint(2, min(count - 1, 20))  # at least 2: "gives 1 apples" reads badly
  friend = rng.choice(_FRIENDS)
  return f"{person[1]} gives {k} {{items}} to {friend}.", count - k, lambda e: f"({e} - {k})"


def _packs(rng, count, person):
  g, m = rng.randint(2, 5), rng.randint(2, 12)
  return (f"{person[1]} buys {g} packs with {m} {{items}} in each pack.", count + g * m,
          lambda e: f"({e} + {g} * {m})")


def _hand_out(rng, count, person):
  options = [(g, m) for g in range(2, 5) for m in range(2, 10) if g * m < count]
  if not options:
    return None
  g, m = rng.choice(options)
  return (f"{person[1]} gives {m} {{items}} to each of {g} friends.", count - g * m,
          lambda e: f"({e} - {g} * {m})")


def _multiply(rng, count, person):
  k, word = rng.choice(((2, "doubles"), (3, "triples")))
  return (f"Then {person[1].lower()} {word} the number of {{items}} {person[1].lower()} has.",
          count * k, lambda e: f"({e} * {k})")


def _share(rng, count, person):
  divisors = [k for k in range(2, 7) if count % k == 0]
  if not divisors:
    return None
  k = rng.choice(divisors)
  return (f"{person[1]} splits the {{items}} equally into {k} boxes and keeps one box.",
          count // k, lambda e: f"({e} / {k})")


_STEPS: Sequence[Step] = (_buy, _give, _packs, _hand_out, _multiply, _share)


def _draw(rng: random.Random, difficulty: int) -> generators.Problem:
  person, items = rng.choice(_PEOPLE), rng.choice(_ITEMS)
  count = rng.randint(5, 30)
  sentences, expr = [f"{person[0]} has {count} {{items}}."], str(count)
  while len(sentences) <= difficulty:
    step = rng.choice(_STEPS)(rng, count, person)
    if step is not None:
      sentence, count, wrap = step
      sentences.append(sentence)
      expr = wrap(expr)
  sentences.append(f"How many {{items}} does {person[0]} have now?")
  prompt = " ".join(sentences).format(items=items)
  return generators.Problem(key=expr, prompt=prompt, answer=str(count), difficulty=difficulty,
                            meta={"expression": expr})


@generators.TASKS.register("word_problems")
def word_problems(split: str, n: int, seed: int, *, difficulty: int | Sequence[int] = 2,
                  unique: bool = False) -> list[Example]:
  """Templated word problems with `difficulty` arithmetic steps (1-5) and an integer answer.

  Args:
    split: "train" or "test".
    n: number of examples.
    seed: random seed.
    difficulty: steps after the starting count, or several levels to mix.
    unique: no repeated problems (the split key is the expression, not the wording).
  """
  levels = generators.as_levels(difficulty, LEVELS)
  return generators.sample("word_problems", _draw, levels, split, n, seed, unique)
