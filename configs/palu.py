r"""PALU (Gao et al., arXiv:2510.10168): per-question budgets from quantiles.

Each prompt keeps its own decode budget L[n]: when its group reaches the target accuracy the
budget shrinks to a quantile of its correct lengths, otherwise it relaxes to the rollout cap
(the Lagrange multiplier truncated to its two extremes). The quantile, target and relaxation
rule are not found (our choices: the defaults of
PALU's update in `budgets.per_prompt`).

  python -m concise_jax.main --config=configs/palu.py --workdir=runs/palu

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.budget.name = "palu"
  c.budget.palu.target_accuracy = 0.5
  c.budget.palu.quantile = 0.5
  return c
