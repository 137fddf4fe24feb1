r"""RLOO (Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization",
arXiv:2402.14740).

GRPO's optimiser with the leave-one-out baseline A_i = R_i − mean_{j≠i} R_j (no std) instead of
the group mean/std; everything else as configs/grpo.py (PPO clip 0.2, token mean, k3 KL loss),
so a comparison isolates the advantage.

  python -m concise_jax.main --config=configs/rloo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.advantage.name = "rloo"                       # G/(G-1) (r - mean_g)
  return c
