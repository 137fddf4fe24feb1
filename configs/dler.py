r"""DLER (Liu et al., "DLER: Doing Length pEnalty Right", arXiv:2510.15110).

Truncation is the whole length penalty: a response cut off at the rollout cap scores 0, any
other scores its correctness. What makes it work is the optimiser: clip-higher (0.2 / 0.28)
with dual clip 10, token-mean loss, DAPO dynamic sampling, a small k3 KL loss and batch-wise
advantage normalisation (group mean removed, no group std, then whitened over all valid tokens
of the batch: verl `reinforce_plus_plus_baseline`). The rollout cap `rollout.max_new_tokens` is
L_T (paper: 4000 with DeepSeek-R1-Distill; here the base config's 128). Run sizes (512 prompts
× 16 rollouts, temperature 1.0) are not copied: SmolLM2 degenerates at 1.0 (base config).
Update-selective merging of the result: `concise_jax.train.weight_merge`.

  python -m concise_jax.main --config=configs/dler.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "dler"
  c.reward.dler.max_len = None             # L_T = the rollout cap (paper)
  c.advantage.name = "reinforce_pp_baseline"  # group mean out, then batch token whitening
  c.filter.name = "nonzero_variance"       # DAPO dynamic sampling (raw correctness varies)
  c.loss.name = "ppo_clip"
  c.loss.ppo_clip.eps_low = 0.2            # DLER launch script
  c.loss.ppo_clip.eps_high = 0.28          # clip-higher
  c.loss.ppo_clip.dual_clip_c = 10.0       # dual clip for negative advantages
  c.aggregation.name = "token_mean"        # verl token-mean
  c.kl.name = "k3"                         # verl low_var_kl
  c.kl.coef = 0.0005                       # KL loss coefficient (KL in reward off)
  c.loss.entropy_coef = 0.0
  return c
