r"""KDRL (Xu et al., arXiv:2506.02208): GRPO + reverse KL to a teacher.

On-policy distillation and RL in one loss: PPO clip with token-level normalisation plus
β·k2(logp − teacher_logp) on the student's own samples, dropped on responses that are already
correct (reward-guided KD). β is constant at the paper's starting 5e-3 (its anneal to 1e-3 is
not implemented). The teacher must share the student's tokenizer; there is no larger SmolLM2
in the store, so the default teacher is the initial policy ("init") — set
`--config.teacher.model=<path to e.g. a SmolLM2-360M-Instruct checkpoint>` for a real run. On
the tiny model the teacher is a second, differently seeded tiny model.

  python -m concise_jax.main --config=configs/kdrl.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import common, grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  tiny = common.parse_arg(arg, model="smollm2", runlocal=False).model == "tiny"
  c.teacher.model = "tiny" if tiny else "init"    # see the docstring: set a real teacher
  c.loss.name = "kdrl"
  c.loss.kdrl.kd_coef = 5e-3                      # beta (paper's start value)
  c.loss.kdrl.estimator = "k2"                    # gradient-unbiased reverse KL
  c.loss.kdrl.mask_correct = True                 # no KD on correct responses
  c.aggregation.name = "token_mean"               # 1 / sum_i |o_i|
  c.kl.coef = 0.0                                 # the teacher term replaces the ref KL
  return c
