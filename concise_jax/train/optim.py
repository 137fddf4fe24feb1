"""The optimizer: global-norm clipping + AdamW with a registered learning-rate schedule.

Schedules have one signature and are chosen by `config.optim.schedule`:

    schedule(lr: float, warmup_steps: int, total_steps: int) -> optax.Schedule

Steps are optimizer steps (ppo_epochs × num_minibatches per train step), not train steps.
"""
import optax

from concise_jax.registry import Registry

SCHEDULES = Registry("lr schedule")


@SCHEDULES.register("constant")
def constant(lr: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up from 0, then flat (verl, Dr. GRPO and DAPO use a constant lr)."""
  del total_steps
  if warmup_steps <= 0:
    return optax.constant_schedule(lr)
  return optax.linear_schedule(0.0, lr, warmup_steps)


@SCHEDULES.register("cosine")
def cosine(lr: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up, then cosine decay to 10% of `lr` at `total_steps`."""
  return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup_steps, 0),
                                            max(total_steps, warmup_steps + 1), end_value=0.1 * lr)


def make_optimizer(optim_cfg, total_steps: int) -> tuple[optax.GradientTransformation,
                                                          optax.Schedule]:
  """clip_by_global_norm(clip_norm) → adamw(schedule) from `config.optim`.

  Args:
    optim_cfg: `config.optim` (lr, schedule, warmup_steps, b1, b2, eps, weight_decay,
      clip_norm; clip_norm <= 0 disables clipping).
    total_steps: optimizer steps of the whole run (for decaying schedules).

  Returns:
    (the optimizer, its learning-rate schedule for logging).
  """
  schedule = SCHEDULES.get(optim_cfg.schedule)(optim_cfg.lr, optim_cfg.warmup_steps, total_steps)
  adamw = optax.adamw(schedule, b1=optim_cfg.b1, b2=optim_cfg.b2, eps=optim_cfg.eps,
                      weight_decay=optim_cfg.weight_decay)
  if optim_cfg.clip_norm <= 0:
    return adamw, schedule
  return optax.chain(optax.clip_by_global_norm(optim_cfg.clip_norm), adamw), schedule
