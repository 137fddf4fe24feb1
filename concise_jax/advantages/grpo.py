"""Group-relative outcome advantages: GRPO (mean/std) and Dr. GRPO (mean only)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.advantages.base import ADVANTAGES


def centered_pg(r_pg: jax.Array) -> jax.Array:
  """r − group mean, set exactly to 0 in groups whose rewards are all equal.

  The float32 mean of equal values need not equal them (3 × 0.7 / 3 ≠ 0.7), and dividing that
  rounding residue by a near-zero std would give large advantages in a group with no signal.
  """
  flat_p1 = r_pg.max(axis=1, keepdims=True) == r_pg.min(axis=1, keepdims=True)
  return jnp.where(flat_p1, 0.0, r_pg - r_pg.mean(axis=1, keepdims=True))


def broadcast_bt(adv_pg: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """[P, G] sequence advantages → [B, T], zero off the mask."""
  return types.from_groups(adv_pg)[:, None] * mask_bt


def group_metrics(r_pg: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array) -> dict:
  """Share of groups without reward variance and mean |A| over the loss mask."""
  flat_p = r_pg.max(axis=1) == r_pg.min(axis=1)
  return {"adv/zero_var_frac": flat_p.astype(jnp.float32).mean(),
          "adv/abs_mean": jnp.abs(adv_bt).sum() / jnp.maximum(mask_bt.sum(), 1.0)}


@ADVANTAGES.register("grpo")
def grpo(reward_out: types.RewardOutput, batch: types.Rollout, mask_bt: jax.Array, *,
         group_size: int, std_ddof: int = 1, eps: float = 1e-6):
  """GRPO outcome advantage (Shao et al., DeepSeekMath, arXiv:2402.03300 §4.1.2).

  A[i, t] = (R_i − mean_g R) / (std_g R + eps) for every valid token t of response i.
  `std_ddof=1` is the unbiased std of verl / TRL (torch.std). A group whose rewards are all
  equal gets A = 0 exactly; a single-sample group (G = 1) therefore gets 0 too
  (verl instead passes the raw score through with mean 0 / std 1: no baseline, so we do not).

  Args:
    reward_out: reads `rewards_b` [B].
    batch: unused (uniform signature).
    mask_bt: [B, T] float32 loss mask.
    group_size: G (static).
    std_ddof: delta degrees of freedom of the group std (1 = unbiased).
    eps: added to the std; keeps a near-constant group finite.

  Returns:
    (adv_bt [B, T] float32, metrics).
  """
  del batch
  r_pg = types.to_groups(reward_out.rewards_b.astype(jnp.float32), group_size)
  if group_size > std_ddof:
    std_p1 = r_pg.std(axis=1, ddof=std_ddof, keepdims=True)
  else:  # std undefined (0/0); the centred rewards are all 0 here anyway
    std_p1 = jnp.zeros((r_pg.shape[0], 1), jnp.float32)
  adv_bt = broadcast_bt(centered_pg(r_pg) / (std_p1 + eps), mask_bt)
  return adv_bt, group_metrics(r_pg, adv_bt, mask_bt)


@ADVANTAGES.register("dr_grpo")
def dr_grpo(reward_out: types.RewardOutput, batch: types.Rollout, mask_bt: jax.Array, *,
            group_size: int):
  """Dr. GRPO advantage (Liu et al., arXiv:2503.20783 §3): no std.

  A[i, t] = R_i − mean_g R. Dividing by the group std up-weights prompts that are almost always
  right or wrong; Dr. GRPO drops it. (Its other fix, a length-independent constant loss
  normaliser, is the aggregation `seq_mean_token_sum` with `norm_const = L_max`.)

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
  adv_bt = broadcast_bt(centered_pg(r_pg), mask_bt)
  return adv_bt, group_metrics(r_pg, adv_bt, mask_bt)
