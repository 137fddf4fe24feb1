r"""PEAR — Phase Entropy Aware Reward (Huang, Lu, Zhang, arXiv:2510.08026).

r = I(correct) − min(max(0, H_think − α·H_answer), 0.5) for correct answers, with the phase
means of the sampling policy's token entropy (the sampler returns it when this reward is
configured). Thinking phase: before </think>, or before the final-answer line for models
without tags (inferred). The paper's α, weight and whether wrong answers are penalised were not
found; see `rewards.pear`'s defaults. GRPO otherwise.

  python -m concise_jax.main --config=configs/pear.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "pear"
  c.reward.pear.alpha = 1.0               # inferred
  c.reward.pear.max_penalty = 0.5         # inferred
  return c
