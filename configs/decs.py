r"""DECS — decoupled token rewards against redundant reasoning (arXiv:2509.25827).

Tokens after the first chunk (line) that already states the correct answer are redundant and
get the bonus β shrunk by the relative length; the redundancy judge is pluggable
(`train.host_features.REDUNDANCY_JUDGES`; built in: each line checked by the verifier). No KL
loss, clip 0.2/0.2 (paper). The token rewards are normalised per position within the group
(advantage `decs_position`). The kappa curriculum state is tracked; easy-group mixing in the
sampler is not implemented.

  python -m concise_jax.main --config=configs/decs.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "decs"
  c.reward.decs.beta = 0.1                # length_reward_beta
  c.reward.decs.kappa_lr = 0.2            # eta
  c.reward.decs.judge = "first_correct_line"
  c.advantage.name = "decs_position"      # per-position group normalisation of the token rewards
  # DECS keeps groups with REWARD std > 0; all-correct groups usually have it (redundancy
  # differs), but `nonzero_variance` reads raw correctness and would drop them: no filter.
  c.filter.name = "none"
  c.kl.coef = 0.0                         # no KL loss
  return c
