r"""T-PPO (arXiv:2506.15050): windowed rollouts with slot refill, a critic, Extended GAE.

Runs its own trainer (`concise_jax.train.tppo_loop`, selected by `trainer = "tppo"`): every
iteration advances each decode slot by `tppo.window` tokens, scores completed groups with the
configured registry reward (`reward.name`, the GRPO trainer's function; stateless rewards
only), and takes one PPO step on them and (optionally) on the unfinished rows, bootstrapped by
the critic. Held-out evaluation as the GRPO trainer (`eval.every`, same metric names).

The advantage is a critic estimator (`advantages.base.CRITIC_ADVANTAGES`) chosen by
`tppo.advantage.name`, its options under `tppo.advantage.<name>` (built from its signature, as
the GRPO trainer's `advantage` section). "egae": decoupled λ (VC-PPO arXiv:2503.01491), value
targets with `lam_critic` = 1, advantages with `lam_policy`; `alpha` > 0 selects VAPO's
length-adaptive λ_policy = 1 − 1/(α·l) (arXiv:2504.05118, α = 0.05 there), with l of an
unfinished row from `lambda_length`; `drop_last_n` is Partial GAE's drop (arXiv:2301.10920;
inferred). "gae": ordinary GAE with one `lam`. The clipped value loss is verl's default.

  python -m concise_jax.main --config=configs/tppo.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
import ml_collections

from concise_jax.advantages import gae  # registers the critic estimators
from configs import common


def advantage_section() -> ml_collections.ConfigDict:
  """`tppo.advantage`: the selected critic estimator and each one's signature defaults."""
  section = ml_collections.ConfigDict({"name": "egae"})
  for name in gae.CRITIC_ADVANTAGES.names():
    section[name] = {k: o.default
                     for k, o in gae.CRITIC_ADVANTAGES.component(name).options.items()}
  return section


def get_config(arg: str | None = None):
  arg = common.parse_arg(arg, model="smollm2", runlocal=False)
  c = common.base_config()
  c.trainer = "tppo"                    # concise_jax.main dispatches to train.tppo_loop
  c.reward.name = "correctness"         # any stateless registry reward (scored per window's
                                        #   completed groups)
  c.loss.name = "ppo_clip"
  c.loss.ppo_clip.eps_low = 0.2
  c.loss.ppo_clip.eps_high = 0.2        # the update's symmetric clip
  c.kl.coef = 0.0                       # no reference model in T-PPO
  c.rollout.max_new_tokens = 256        # a long tail is what windows pay off on

  c.tppo = ml_collections.ConfigDict()
  c.tppo.window = 32                    # W: decode steps per iteration (one update each)
  c.tppo.critic = "head"                # "head": value head on the policy trunk (stop-grad);
                                        #   "separate": a decoder copy (2x update cost)
  c.tppo.advantage = advantage_section()  # "egae" | "gae"; egae: lam_policy (0.95), alpha
                                        #   (> 0: VAPO's 1 − 1/(α·l), paper 0.05),
                                        #   lambda_length ("current" | "batch_mean"), drop_last_n
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
