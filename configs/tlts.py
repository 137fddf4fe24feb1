r"""Train Long, Think Short (Hammoud et al., arXiv:2508.08940).

GRPO whose decode cap decays during training (budget schedule `tlts`): the model first finds
strategies under a generous budget, then compresses them. A cut-off answer has no final answer,
so the 0/1 reward already punishes running over. The paper's length term, reward weights, gamma,
period and final budget are not found (our choices: the defaults of
`budgets.schedules.tlts`).

  python -m concise_jax.main --config=configs/tlts.py --workdir=runs/tlts

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.budget.name = "tlts"              # B(t) = max(floor, B0 · gamma^⌊t / period⌋)
  c.budget.tlts.gamma = 0.75
  c.budget.tlts.period = 10
  c.budget.tlts.floor = 0.25          # a quarter of rollout.max_new_tokens
  return c
