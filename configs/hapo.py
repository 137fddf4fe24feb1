r"""HAPO (Huang, Zhang, Cardie, arXiv:2505.11225): history-aware length reward.

Each training prompt remembers the shortest correct length seen so far (the reward's own
state, `rewards.history.init_history`, tables sized by `data.num_prompts`); a correct answer
shorter than that is rewarded, a longer one penalised (never below a wrong one), short wrong
answers are not punished. The linear variant
is `--config.reward.name=hapo_linear`; the running-mean history is
`--config.reward.hapo_cosine.mode=mean`. HAPO trains with TRL's GRPO, so the optimisation is
`configs/grpo.py`'s (TRL's exact loss normalisation and β for the paper's runs are not
stated). The history needs the same prompts to come back: several epochs (paper: 5).

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "hapo_cosine"
  c.reward.hapo_cosine.length_weight = 1.0   # w_lr (official default)
  c.reward.hapo_cosine.mode = "min"          # h = shortest correct length so far
  c.reward.hapo_cosine.correct_floor = -0.7  # keeps correct above wrong for w_lr <= 1
  c.advantage.name = "grpo"                  # TRL GRPO: group mean / std
  return c
