r"""DOT — Dynamic Outlier Truncation (Wu et al., arXiv:2601.03969).

No length penalty: inside all-correct groups the answers longer than ⌊mean + α·std⌋ by at least
32 tokens are cut there (the cut tokens leave the loss) and the cut text is re-verified on the
host (`train.host_features`), which usually fails. GRPO advantages, clip 0.2/0.2,
seq-mean-token-mean. No group filter: DOT drops zero-REWARD-variance groups after the cut, and the
registered `nonzero_variance` reads raw correctness, which would drop every all-correct group
the cut acts on. DOT's predictive oversampling and its KL-Cov loss are not implemented, so no KL
term here.

  python -m concise_jax.main --config=configs/dot.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import common, grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  parsed = common.parse_arg(arg, model="smollm2", runlocal=False)
  c.reward.name = "dot"
  # T_g = floor(mean + alpha * std), ddof 1. The paper's alpha = 3 goes with G = 32; in a group
  # of G no length lies more than (G - 1) / sqrt(G) deviations above the mean (2.47 at our
  # G = 8, 1.5 at runlocal's G = 4), so alpha = 3 would never cut here: scaled to ~0.8 of that.
  c.reward.dot.alpha = 1.2 if parsed.runlocal else 2.0
  c.reward.dot.margin = 32.0              # cut when L - T_g >= 32 tokens
  c.reward.dot.success_threshold = 1.0    # only all-correct groups are cut
  # DOT drops groups by REWARD std after the cut; `nonzero_variance` reads raw correctness and
  # would drop exactly the all-correct groups the cut acts on, so no filter here.
  c.filter.name = "none"
  c.aggregation.name = "seq_mean_token_mean"  # the paper runner's loss_agg_mode
  c.kl.coef = 0.0                         # DOT uses KL-Cov (not implemented), no KL loss
  return c
