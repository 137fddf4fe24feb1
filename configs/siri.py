r"""SIRI (Wen et al., arXiv:2509.25176): interleaved compression and expansion.

The decode cap oscillates on a cosine between a low and a high cap; the reward is 1 only for a
correct answer within the current cap (a cut answer scores 0). GRPO with DAPO's clip-higher and
no KL (sourced, model card). Caps, period and phase are not found (our choices: the defaults
of `budgets.schedules.siri`).

  python -m concise_jax.main --config=configs/siri.py --workdir=runs/siri

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.budget.name = "siri"
  c.budget.siri.low = 0.5             # compression cap: half of rollout.max_new_tokens
  c.budget.siri.period = 40
  c.loss.ppo_clip.eps_high = 0.28     # DAPO clip-higher
  c.kl.coef = 0.0                     # KL removed
  return c
