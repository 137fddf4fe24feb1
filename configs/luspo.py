r"""LUSPO (Liu et al., "Length-Unbiased Sequence Policy Optimization", arXiv:2602.05261).

GSPO with each sequence's term weighted by its length |y_i|, so a token's gradient no longer
shrinks with the response length (no length collapse). With the GSPO token-form loss this is
exactly the aggregation `seq_mean_token_sum` with norm_const 1: (1/B') Σ_i Σ_t ℓ_i =
(1/B') Σ_i |y_i|·ℓ_i (TRL divides by B rather than by the non-empty B').

  python -m concise_jax.main --config=configs/luspo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import gspo


def get_config(arg: str | None = None):
  c = gspo.get_config(arg)
  c.loss.gspo.eps_low = 2e-3                      # paper section 5.1
  c.loss.gspo.eps_high = 2.5e-3
  c.aggregation.name = "seq_mean_token_sum"       # |y_i|-weighted mean over sequences
  c.aggregation.seq_mean_token_sum.norm_const = 1.0
  return c
