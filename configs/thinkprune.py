r"""ThinkPrune (arXiv:2504.01296, id unverified): caps lowered round by round.

GRPO with the 0/1 reward under a hard decode cap that drops each round (paper: 4000 → 3000 →
2000 tokens, each round a fresh run from the last checkpoint; here one run, `steps_per_round`
steps per round). KL 0.001 as in the paper (low_var_kl = our k3).

  python -m concise_jax.main --config=configs/thinkprune.py --workdir=runs/thinkprune

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.budget.name = "thinkprune"
  c.budget.thinkprune.limits = (1.0, 0.75, 0.5)   # fractions of rollout.max_new_tokens
  c.budget.thinkprune.steps_per_round = 50
  c.kl.coef = 0.001
  return c
