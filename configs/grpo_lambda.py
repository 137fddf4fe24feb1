r"""GRPO-λ (Dai, Liu, Si, arXiv:2505.18086): length penalty only in safe groups.

Same optimisation as `configs/grpo.py`; only the reward changes. The top-λ share of groups by
correctness ratio get the Kimi k1.5 length reward, the rest the plain 0/1 reward. λ and the
length weight are not given in the paper (our defaults: 0.5 and 0.4, in
`rewards.grpo_lambda`'s signature).

  python -m concise_jax.main --config=configs/grpo_lambda.py --config.optim.lr=2e-6 --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "grpo_lambda"
  c.reward.grpo_lambda.top_fraction = 0.5       # λ: share of groups given the length term
  c.reward.grpo_lambda.min_correct_ratio = 0.0  # all-wrong groups never get it
  c.reward.grpo_lambda.length_weight = 0.4      # weight of the Kimi min-max length term
  return c
