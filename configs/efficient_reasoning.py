r"""Efficient Reasoning (Arora & Zanette, "Training Language Models to Reason Efficiently",
arXiv:2502.04463): correct answers are discounted by a sigmoid of their length z-score among
the group's correct answers, r = I(correct)·(1 − α·σ((L − μ_c)/σ_c)).

α is the one knob trading accuracy for length (the paper sweeps 0.05 to 0.4). The optimisation
is `configs/rloo.py`'s, a leave-one-out baseline over the prompt's samples (Inferred: our
reading of the paper's policy-gradient estimator). Stateless and host-free: the reward needs no
extra state or host feature.

  python -m concise_jax.main --config=configs/efficient_reasoning.py:model=tiny,runlocal \
      --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import rloo


def get_config(arg: str | None = None):
  c = rloo.get_config(arg)
  c.reward.name = "efficient_reasoning"
  c.reward.efficient_reasoning.alpha = 0.1   # length discount of a correct answer (0.05-0.4)
  return c
