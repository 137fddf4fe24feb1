r"""DISPO (Karaman et al., arXiv:2602.00983): CISPO-style REINFORCE with four
importance-weight bounds, separate for correct and incorrect responses and for up/down moves.

The form and all four defaults are inferred (not found): tokens whose ratio leaves their band
get no gradient ("mask"; "clip" = CISPO with four bounds), bands 0.2 / 0.28 for both. GRPO
advantages, token-level loss, no KL, 4 off-policy minibatches (inferred).

  python -m concise_jax.main --config=configs/dispo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.loss.name = "dispo"
  c.loss.dispo.eps_low_pos = 0.2                  # correct, weight < 1 (distillation side)
  c.loss.dispo.eps_high_pos = 0.28                # correct, weight > 1 (exploration side)
  c.loss.dispo.eps_low_neg = 0.2                  # incorrect, weight < 1 (length collapse)
  c.loss.dispo.eps_high_neg = 0.28                # incorrect, weight > 1 (repetition collapse)
  c.loss.dispo.outside_band = "mask"              # no gradient outside the band
  c.aggregation.name = "token_mean"
  c.optim.num_minibatches = 4                     # off-policy steps (inferred)
  c.kl.coef = 0.0
  return c
