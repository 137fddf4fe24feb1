"""RLOO: leave-one-out baseline over the group (Ahmadian et al., arXiv:2402.14740)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.advantages.base import ADVANTAGES
from concise_jax.advantages.grpo import broadcast_bt, centered_pg, group_metrics


@ADVANTAGES.register("rloo")
def rloo(reward_out: types.RewardOutput, batch: types.Rollout, mask_bt: jax.Array, *,
         group_size: int):
  """REINFORCE Leave-One-Out advantage (Ahmadian et al., arXiv:2402.14740 §3; verl `rloo`).

  A_i = R_i − mean_{j≠i} R_j = G/(G−1) · (R_i − mean_g R): the baseline excludes the sample
  itself, so it is independent of R_i and the estimate unbiased. No std division. G = 1 has
  no other sample to form a baseline and gets A = 0 (as verl's
  vectorised version and our `grpo`; verl's loop version passes R_i through instead).

  Args:
    reward_out: reads `rewards_b` [B].
    batch: unused (uniform signature).
    mask_bt: [B, T] float32 loss mask.
    group_size: G (static).

  Returns:
    (adv_bt [B, T] float32, metrics).
  """
  del batch
  r_pg = types.to_groups(reward_out.rewards_b.astype(jnp.float32), group_size)
  scale = group_size / (group_size - 1) if group_size > 1 else 0.0
  adv_bt = broadcast_bt(centered_pg(r_pg) * scale, mask_bt)
  return adv_bt, group_metrics(r_pg, adv_bt, mask_bt)
