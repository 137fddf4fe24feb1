r"""ARLCP (ICLR 2026, OpenReview aRzEtK9Ite): reflection + length penalties.

Correct answers lose up to 0.2 for reflecting ("wait", "hmm", "but", ...) and for length, both
relative to the other correct answers to the same prompt; the split between the two terms
follows the answer's own reflection count. Keyword counts come from `rollout_batch`
(the `reflection_count` host feature it declares).

ARLCP trains with the RLOO advantage. Not expressible here: its KL penalty inside the reward
(coef 0.001, "kl"); this codebase has KL only as a loss term, so grpo.py's k3 loss stays.

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "arlcp"
  c.reward.arlcp.count_thresholds = (40, 80)             # reflection-count tiers
  c.reward.arlcp.reflection_weights = (0.05, 0.10, 0.15)  # w1 per tier
  c.reward.arlcp.total_weight = 0.2                      # w1 + w2
  c.advantage.name = "rloo"                # leave-one-out baseline (ARLCP scripts)
  if not c.model.name == "tiny":
    c.optim.lr = 2e-6                      # ARLCP scripts
  return c
