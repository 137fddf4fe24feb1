"""DECS's token-position group normalisation (arXiv:2509.25827)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.advantages.base import ADVANTAGES


@ADVANTAGES.register("decs_position")
def decs_position(reward_out: types.RewardOutput, batch: types.Rollout, mask_bt: jax.Array, *,
                  group_size: int, std_ddof: int = 1, eps: float = 1e-6):
  """A[i, t] = (R[i, t] − mean_g R[:, t]) / (std_g R[:, t] + eps), then × mask.

  DECS gives each token its own reward (`RewardOutput.token_rewards_bt`: redundant tokens of
  correct answers earn a smaller bonus), so responses are compared position by position: token
  t of response i against token t of its group mates. Our choice: the statistics at position t
  are over the responses of the group that HAVE a token at t under the loss mask; a position
  with fewer than `std_ddof` + 1 such responses, or whose rewards are all equal, gets A = 0.
  The official DECS code differs: it fills each row's padding with that row's outcome value,
  takes mean/std over all G rows (no zero-std guard; G = 1 passes R through) and masks after —
  so long-vs-short groups get different numbers there. `std_ddof=1` as GRPO (torch.std).

  Args:
    reward_out: reads `token_rewards_bt` [B, T] (the `decs` reward fills it); without it,
      each response's `rewards_b` on all its tokens (GRPO, but position by position).
    batch: unused (uniform signature).
    mask_bt: [B, T] float32 loss mask.
    group_size: G (static).
    std_ddof: delta degrees of freedom of the per-position group std.
    eps: added to the std.

  Returns:
    (adv_bt [B, T] float32, {"adv/abs_mean", "adv/compared_frac": share of masked tokens with
     at least one comparable group mate}).
  """
  del batch
  b, t = mask_bt.shape
  r_bt = reward_out.token_rewards_bt
  if r_bt is None:  # a sequence reward: every token of a response carries it
    r_bt = jnp.broadcast_to(reward_out.rewards_b[:, None], (b, t))
  r_pgt = r_bt.astype(jnp.float32).reshape(b // group_size, group_size, t)
  m_pgt = (mask_bt > 0).reshape(b // group_size, group_size, t).astype(jnp.float32)
  n_p1t = m_pgt.sum(axis=1, keepdims=True)
  mean_p1t = (r_pgt * m_pgt).sum(axis=1, keepdims=True) / jnp.maximum(n_p1t, 1.0)
  dev_pgt = jnp.where(m_pgt > 0, r_pgt - mean_p1t, 0.0)
  var_p1t = (dev_pgt ** 2).sum(axis=1, keepdims=True) / jnp.maximum(n_p1t - std_ddof, 1.0)
  masked_r = jnp.where(m_pgt > 0, r_pgt, jnp.nan)
  flat_p1t = jnp.nanmax(masked_r, axis=1, keepdims=True) == jnp.nanmin(masked_r, axis=1,
                                                                         keepdims=True)
  comparable_p1t = (n_p1t > std_ddof) & ~flat_p1t
  adv_pgt = jnp.where(comparable_p1t, dev_pgt / (jnp.sqrt(var_p1t) + eps), 0.0) * m_pgt
  adv_bt = adv_pgt.reshape(b, t)
  tokens = jnp.maximum(mask_bt.sum(), 1.0)
  return adv_bt, {"adv/abs_mean": jnp.abs(adv_bt).sum() / tokens,
                  "adv/compared_frac": ((n_p1t > 1) * m_pgt).sum() / tokens}
