r"""Dr. GRPO (Liu et al., "Understanding R1-Zero-Like Training", arXiv:2503.20783).

GRPO without its two length/difficulty biases: no std in the advantage and a constant loss
normaliser L_max instead of 1/|o_i|, and no KL. The divisor is Σ m·L / (B'·L_max), as oat, TRL
and verl ≥ 0.7 compute it (`seq_mean_token_sum` with norm_const = L_max; `seq_mean_token_sum_norm`
is the same with C = the padded width).

  python -m concise_jax.main --config=configs/dr_grpo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.advantage.name = "dr_grpo"                    # r - mean_g, no std
  c.aggregation.name = "seq_mean_token_sum"       # sum over tokens / (B' * L_max)
  c.aggregation.seq_mean_token_sum.norm_const = float(c.rollout.max_new_tokens)  # L_max
  c.loss.ppo_clip.eps_low = 0.2                   # oat default (inferred in the reference)
  c.loss.ppo_clip.eps_high = 0.2
  c.kl.coef = 0.0                                 # beta = 0
  return c
