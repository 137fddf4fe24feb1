r"""GSPO (Zheng et al., "Group Sequence Policy Optimization", arXiv:2507.18071).

One length-normalised, clipped importance ratio per sequence (token form of verl), GRPO
advantages, sequence-mean aggregation, no KL. The ratio only differs from 1 off-policy, so the
rollout is split into 4 minibatches (4 optimizer steps), as in the paper. Note: GSPO's
sequence mean under-weights long responses (LUSPO's critique, configs/luspo.py) — an implicit
shortening pressure to keep in mind when comparing length rewards.

  python -m concise_jax.main --config=configs/gspo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.loss.name = "gspo"
  c.loss.gspo.eps_low = 3e-4                      # paper v2 section 5.1
  c.loss.gspo.eps_high = 4e-4
  c.aggregation.name = "seq_mean_token_mean"      # (1/G) sum_i: verl forces this for GSPO
  c.optim.num_minibatches = 4                     # 4 optimizer steps per rollout (paper)
  c.kl.coef = 0.0                                 # beta = 0
  return c
