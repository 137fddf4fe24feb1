r"""Difficulty-Aware DLER (arXiv:2510.15110 §4) on DLER's optimiser.

Groups answered correctly at least half of the time (easy prompts) are held to half the
length cap; harder groups keep the full rollout cap. The paper's caps are {2000, 4000} under a
4000-token rollout; we keep the ratio: (max_new_tokens, max_new_tokens // 2). The paper runs it
as a second stage (150 steps from a DLER checkpoint: pass its path as `model.name`).

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import dler


def get_config(arg: str | None = None):
  c = dler.get_config(arg)
  c.reward.name = "da_dler"
  c.reward.da_dler.thresholds = (0.5,)     # p >= 0.5 counts as easy (inferred at exactly 0.5)
  cap = c.rollout.max_new_tokens
  c.reward.da_dler.caps = (cap, cap // 2)  # hard groups: full cap; easy groups: half
  return c
