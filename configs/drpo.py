r"""DRPO (Li, Chen, Lin, Yang, arXiv:2510.04474): decoupled positive weights.

Correct answers are re-weighted toward short ones only among themselves (softmax of
(1 − L/L_pad)/λ), wrong answers are pushed down by a log-sum-exp term; groups without both get
no signal. `rewards/drpo.py` emits the objective's per-sample gradient weights; with the
mean-centred `dr_grpo` advantage (the weights are zero-sum, so it leaves them unchanged), the
PPO surrogate at ratio 1 and `seq_mean_token_mean` aggregation the update's gradient is
exactly DRPO's. Keep one PPO epoch and one minibatch (the paper's setting): later steps see
stale weights for the wrong answers.

Not expressible here: DRPO's KL hinge β·max(KL(π_old‖π) − δ, 0) (β 1e3, δ 1e-4); the PPO clip
bounds the step instead. No reference model, no KL loss (paper).

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "drpo"
  c.reward.drpo.lam = 0.1                  # λ of the length weights (1.5B script)
  c.reward.drpo.tau = 10.0                 # τ of the log-sum-exp over wrong answers
  c.reward.drpo.max_len = None             # L_pad = the rollout cap
  c.advantage.name = "dr_grpo"             # mean-centring only: passes the weights through
  c.filter.name = "none"                   # skipped groups still count in 1/Q
  c.loss.name = "ppo_clip"                 # gradient −A·∇logp at ratio 1
  c.aggregation.name = "seq_mean_token_mean"  # s_i is a per-sequence token mean
  c.kl.coef = 0.0                          # no reference model
  c.train.ppo_epochs = 1                   # DRPO: 1 PPO epoch
  c.optim.num_minibatches = 1              # weights exact only on-policy
  c.rollout.temperature = 0.6              # DRPO script
  if not c.model.name == "tiny":
    c.optim.lr = 2e-6                      # DRPO 1.5B script
  return c
