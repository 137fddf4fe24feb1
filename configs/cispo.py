r"""CISPO (MiniMax, "MiniMax-M1", arXiv:2506.13585).

REINFORCE with a clipped, stop-gradient importance weight: every token keeps its gradient
(PPO would zero rare "fork" tokens outside the band). GRPO advantages, token-level loss, no
KL. The weight only differs from 1 off-policy, so the rollout is split into 4 minibatches
(inferred; the paper's schedule is not in the reference). TRL's absolute-cap form:
`--config.loss.cispo.cap_mode=abs_max`.

  python -m concise_jax.main --config=configs/cispo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.loss.name = "cispo"
  c.loss.cispo.cap_mode = "band"                  # clip(rho, 1 - eps_low, 1 + eps_high)
  c.loss.cispo.eps_low = 1.0                      # no lower bound (paper)
  c.loss.cispo.eps_high = 0.28                    # weight <= 1.28 (inferred: Trinity-RFT)
  c.aggregation.name = "token_mean"               # 1 / sum_i |o_i|
  c.optim.num_minibatches = 4                     # off-policy steps (inferred)
  c.kl.coef = 0.0
  return c
