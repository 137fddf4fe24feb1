r"""T-PPO (arXiv:2506.15050): windowed rollouts with slot refill, a critic, Extended GAE.

Runs its own trainer (`concise_jax.train.tppo_loop`, selected by `trainer = "tppo"`): every
iteration advances each decode slot by `tppo.window` tokens, scores completed groups with the
0/1 correctness reward, and takes one PPO step on them and (optionally) on the unfinished rows,
bootstrapped by the critic.

Decoupled λ (VC-PPO arXiv:2503.01491): value targets with λ_critic = 1, advantages with
λ_policy; `tppo.alpha` > 0 selects VAPO's length-adaptive λ_policy = 1 − 1/(α·l) (arXiv:2504.05118,
α = 0.05 there), with l of an unfinished row from `tppo.lambda_length_rule`. The clipped value
loss is verl's default. `tppo.drop_last_n` is Partial GAE's drop (arXiv:2301.10920; inferred).

  python -m concise_jax.main --config=configs/tppo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None):
  arg = common.parse_arg(arg, model="smollm2", runlocal=False)
  c = common.base_config()
  c.trainer = "tppo"                    # concise_jax.main dispatches to train.tppo_loop
  c.reward.name = "correctness"         # the only reward the slot scheduler scores with
  c.loss.name = "ppo_clip"
  c.loss.ppo_clip.eps_low = 0.2
  c.loss.ppo_clip.eps_high = 0.2        # the update's symmetric clip
  c.kl.coef = 0.0                       # no reference model in T-PPO
  c.rollout.max_new_tokens = 256        # a long tail is what windows pay off on

  c.tppo = ml_collections.ConfigDict()
  c.tppo.window = 32                    # W: decode steps per iteration (one update each)
  c.tppo.critic = "head"                # "head": value head on the policy trunk (stop-grad);
                                        #   "separate": a decoder copy (2x update cost)
  c.tppo.lambda_policy = 0.95           # λ_policy when alpha = 0
  c.tppo.alpha = 0.0                    # > 0: VAPO's 1 − 1/(α·l) (paper 0.05)
  c.tppo.lambda_length_rule = "current"  # l of an unfinished row: "current" | "batch_mean"
  c.tppo.drop_last_n = 0                # alive rows' last tokens out of the policy loss
  c.tppo.value_clip = 0.5               # verl's clipped value loss range
  c.tppo.value_coef = 1.0               # weight of the value loss (separate optimizers)
  c.tppo.critic_lr = 1e-5               # the critic's AdamW learning rate
  c.tppo.train_on_unfinished = True     # alive rows train too (EGAE bootstrap)
  c.tppo.refresh = "keep"               # "keep" the KV cache across updates, or "reprefill"
  common.apply_common_args(c, arg)
  if arg.model == "tiny":
    c.tppo.critic_lr = 1e-3
  if arg.runlocal:
    c.tppo.window = 8
  return c
