r"""L1 / LCPO (Aggarwal & Welleck, arXiv:2503.04697): obey a stated budget.

Every training prompt states a budget n drawn uniformly per prompt and step ("Think for {n}
tokens."), and the reward is L1-Exact: I(correct) − alpha·|n − L|. The decode cap stays the
rollout cap. alpha is rescaled to our budgets: the paper's 0.0003 for n ≤ 4000 gives a penalty
of up to 1.2; 0.01 does the same for n ≤ 128. L1-Max: `--config.reward.name=l1_max
--config.budget.prompt_template="Think for maximum {n} tokens."`.

  python -m concise_jax.main --config=configs/l1.py --workdir=runs/l1

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "l1_exact"
  c.reward.l1_exact.alpha = 0.01
  c.budget.name = "uniform"           # n ~ U[low, high] per prompt and step
  c.budget.uniform.low = 0.25         # a quarter of rollout.max_new_tokens ...
  c.budget.uniform.high = None        # ... up to all of it
  c.budget.prompt_template = "Think for {n} tokens."
  return c
