r"""DAPO (Yu et al., arXiv:2503.14476): GRPO with four long-CoT fixes.

Clip-higher (ε_low 0.2, ε_high 0.28), dynamic sampling (drop groups whose raw correctness does
not vary, refill the batch), token-level loss (`token_mean`), and the soft overlong reward
(DAPO's L_cache buffer, scaled to the rollout cap: paper 4096 of 20480 = 1/5). No KL term.
Overlong filtering (truncated samples leave the loss) is available as
`--config.loss.mask_truncated=True`, off as in the paper's best run.

  python -m concise_jax.main --config=configs/dapo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "soft_overlong"                 # correctness + DAPO's soft length penalty
  c.reward.soft_overlong.max_len = None           # L_max = the rollout cap
  c.reward.soft_overlong.buffer = max(1, c.rollout.max_new_tokens // 5)  # L_cache (1/5 of cap)
  c.advantage.name = "grpo"                       # group mean / std kept
  c.filter.name = "nonzero_variance"              # dynamic sampling on raw correctness
  c.loss.mask_truncated = False                   # overlong filtering off (paper's best run)
  c.loss.name = "ppo_clip"
  c.loss.ppo_clip.eps_low = 0.2                   # clip-higher: decoupled bounds
  c.loss.ppo_clip.eps_high = 0.28
  c.aggregation.name = "token_mean"               # token-level policy-gradient loss
  c.kl.coef = 0.0                                 # no KL term
  return c
