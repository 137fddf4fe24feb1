r"""LASER — step length reward (Liu et al., arXiv:2505.15612).

r = C + 0.5·I(correct)·I(L ≤ L_T), C = +1 / −0.5 / −1 (correct / wrong / no answer). The paper
uses L_T ∈ {2048, 4096, 8192} with a 16384 cap; we keep the same ratio L_T = cap / 4 of our
decode cap. GRPO, clip 0.2/0.28, k3 KL 0.001, entropy bonus 0.001.

  python -m concise_jax.main --config=configs/laser.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def laser_optimisation(c):
  """The optimisation settings LASER, LASER-D and LASER-DE share (Laser training scripts)."""
  c.advantage.name = "grpo"               # plain GRPO
  c.loss.ppo_clip.eps_high = 0.28         # clip 0.2 / 0.28
  c.loss.entropy_coef = 0.001             # entropy coefficient of the scripts
  c.kl.coef = 0.001                       # low_var_kl loss


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  laser_optimisation(c)
  c.reward.name = "laser"
  c.reward.laser.target_length = c.rollout.max_new_tokens // 4  # L_T: 4096 of 16384
  c.reward.laser.alpha = 0.5              # step bonus
  return c
