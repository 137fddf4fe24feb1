r"""GTPO (Simoni et al., arXiv:2508.03772): conflict-token and entropy control.

REINFORCE (ratio ≡ 1) on a token advantage: GRPO's A_i, zeroed for completions whose mean
entropy exceeds 0.7 and otherwise reduced by 0.1·entropy; tokens of the shared prefix/suffix of
positive and negative completions get λ = 2 (positive) / 0 (negative); divided by the number of
conflict tokens (authors' code). 1/|o_i| then mean over completions, no KL, no reference. The
sampler returns token entropies for it (`train.host_features`).

  python -m concise_jax.main --config=configs/gtpo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.advantage.name = "gtpo"
  c.advantage.gtpo.w_conflict = 2.0               # lambda on positive conflict tokens
  c.advantage.gtpo.ent_threshold = 0.7            # entropy gate (~ ln 2)
  c.advantage.gtpo.ent_scale = 0.1                # entropy penalty on the advantage
  c.loss.name = "reinforce"                       # on-policy ratio exp(logp - sg(logp))
  c.aggregation.name = "seq_mean_token_mean"      # 1/|o_i|, mean over completions
  c.kl.coef = 0.0                                 # beta = 0
  return c
