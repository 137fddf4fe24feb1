r"""LASER-DE — LASER-D plus exploration of hard prompts (Liu et al., arXiv:2505.15612; §9).

As LASER-D, and wrong answers (with an answer) longer than their band's target that are not
repetitive get +α, so long explorations on hard prompts are not punished. The repetition flag
is an n-gram detector on the token ids, computed on the host (`train.host_features`).

  python -m concise_jax.main --config=configs/laser_de.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo, laser, laser_d


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  laser.laser_optimisation(c)
  c.reward.name = "laser_de"
  laser_d.set_monitor(c, c.reward.laser_de, arg)
  c.reward.laser_de.ngram = 20            # inferred: repeated 20-token window ...
  c.reward.laser_de.min_repeats = 3       # ... seen 3 times = repetitive
  return c
