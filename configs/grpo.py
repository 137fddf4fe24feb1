r"""GRPO (Shao et al., DeepSeekMath, arXiv:2402.03300) with a 0/1 reward.

The length-agnostic baseline the concise-reasoning methods are compared against: group
mean/std advantages, PPO clip 0.2/0.2, token-mean aggregation (verl's default; the paper's
seq-mean-token-mean is `--config.aggregation.name=seq_mean_token_mean`) and k3 KL to the
initial policy with beta = 0.001 (DeepSeek-R1 / verl GRPO docs; DeepSeekMath used 0.04).

  python -m concise_jax.main --config=configs/grpo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import common


def get_config(arg: str | None = None):
  arg = common.parse_arg(arg, model="smollm2", runlocal=False)
  c = common.base_config()
  c.reward.name = "correctness"         # r = 1 if correct else 0
  c.advantage.name = "grpo"             # (r - mean_g) / (std_g + eps)
  c.filter.name = "none"                # every group trains
  c.loss.name = "ppo_clip"
  c.loss.ppo_clip.eps_low = 0.2         # symmetric clip of the paper
  c.loss.ppo_clip.eps_high = 0.2
  c.aggregation.name = "token_mean"     # verl default
  c.kl.name = "k3"                      # GRPO's unbiased low-variance estimator
  c.kl.coef = 0.001                     # beta (R1); the reference is the initial policy
  common.apply_common_args(c, arg)
  return c
