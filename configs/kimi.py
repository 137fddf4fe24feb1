r"""Kimi k1.5 length reward (Kimi Team, arXiv:2501.12599 §2.3.3) on GRPO.

Every group gets the group min-max length term: correct answers +0.4·(0.5 − normalised length),
wrong answers only its negative part, on a base of +1 / −0.5 (Laser's defaults). Same
optimisation as `configs/grpo.py`.

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "kimi_length"
  c.reward.kimi_length.correct_reward = 1.0     # base reward of a correct answer
  c.reward.kimi_length.wrong_reward = -0.5      # base reward of a wrong answer
  c.reward.kimi_length.length_weight = 0.4      # weight of the length term
  return c
