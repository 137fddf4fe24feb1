"""REINFORCE++ advantages: batch-whitened returns, with or without a group-mean baseline.

Both whiten over every valid token of the whole batch instead of per group (Hu, arXiv:2501.03262;
verl `reinforce_plus_plus[_baseline]`): the batch has far more samples than a
group, so the scale estimate is stable and small groups are not inflated. DLER (arXiv:2510.15110)
uses the baseline variant as its "batch-wise reward normalisation".
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.advantages.base import ADVANTAGES
from concise_jax.advantages.grpo import broadcast_bt, centered_pg, group_metrics


def masked_whiten_bt(x_bt: jax.Array, mask_bt: jax.Array, *, eps: float = 1e-8) -> jax.Array:
  """(x − mean) / sqrt(var + eps) over the mask, 0 off it (verl `masked_whiten`).

  var is the unbiased (Bessel-corrected) token variance, as verl's. If every valid value is
  equal the result is exactly 0: the float mean's rounding residue divided by sqrt(eps) would
  otherwise turn "no signal" into advantages of order 1e-4 · |x|.
  """
  on_bt = mask_bt > 0
  n = mask_bt.sum()
  mean = jnp.where(on_bt, x_bt * mask_bt, 0.0).sum() / jnp.maximum(n, 1.0)
  dev_bt = jnp.where(on_bt, x_bt - mean, 0.0)
  var = (dev_bt ** 2 * mask_bt).sum() / jnp.maximum(n - 1.0, 1.0)
  flat = jnp.where(on_bt, x_bt, -jnp.inf).max() == jnp.where(on_bt, x_bt, jnp.inf).min()
  return jnp.where(flat | ~on_bt, 0.0, dev_bt * jax.lax.rsqrt(var + eps)) * mask_bt


def token_rewards_bt(reward_out: types.RewardOutput, mask_bt: jax.Array) -> jax.Array:
  """Token rewards: `token_rewards_bt` if the reward gave them, else R_i on the last valid
  token of response i (where verl puts the outcome score)."""
  if reward_out.token_rewards_bt is not None:
    return reward_out.token_rewards_bt.astype(jnp.float32) * mask_bt
  t = mask_bt.shape[1]
  last_b = t - 1 - jnp.argmax((mask_bt > 0)[:, ::-1], axis=1)
  last_bt = jax.nn.one_hot(last_b, t) * (mask_bt.sum(axis=1, keepdims=True) > 0)
  return reward_out.rewards_b.astype(jnp.float32)[:, None] * last_bt * mask_bt


def discounted_returns_bt(r_bt: jax.Array, mask_bt: jax.Array, gamma: float) -> jax.Array:
  """G_t = Σ_{k≥t} γ^(k−t) r_k over valid tokens (masked positions are skipped, as in verl)."""
  def step(carry_b, xs):
    r_b, m_b = xs
    g_b = r_b + gamma * carry_b
    return jnp.where(m_b > 0, g_b, carry_b), g_b * m_b
  _, g_tb = jax.lax.scan(step, jnp.zeros(r_bt.shape[0], jnp.float32),
                         (r_bt.T, mask_bt.T), reverse=True)
  return g_tb.T


@ADVANTAGES.register("reinforce_pp")
def reinforce_pp(reward_out: types.RewardOutput, batch: types.Rollout, mask_bt: jax.Array, *,
                 group_size: int, gamma: float = 1.0, eps: float = 1e-8):
  """REINFORCE++ (Hu, arXiv:2501.03262; verl `reinforce_plus_plus`).

  A = batch-whiten(G_t), G_t the γ-discounted return of the token rewards (outcome reward on
  the last token unless the reward gives token rewards). No group baseline: the batch mean is
  the baseline. verl also folds a KL penalty into the token rewards when `use_kl_in_reward`;
  here KL stays a loss term (`config.kl`).

  Args:
    reward_out: reads `rewards_b` [B] (or `token_rewards_bt` [B, T] when set).
    batch: unused (uniform signature).
    mask_bt: [B, T] float32 loss mask; the whitening statistics are taken under it.
    group_size: G (static; only for the metrics).
    gamma: discount of the return (verl default 1.0).
    eps: added to the variance.

  Returns:
    (adv_bt [B, T] float32, metrics).
  """
  del batch
  g_bt = discounted_returns_bt(token_rewards_bt(reward_out, mask_bt), mask_bt, gamma)
  adv_bt = masked_whiten_bt(g_bt, mask_bt, eps=eps)
  r_pg = types.to_groups(reward_out.rewards_b.astype(jnp.float32), group_size)
  return adv_bt, group_metrics(r_pg, adv_bt, mask_bt)


@ADVANTAGES.register("reinforce_pp_baseline")
def reinforce_pp_baseline(reward_out: types.RewardOutput, batch: types.Rollout,
                          mask_bt: jax.Array, *, group_size: int, eps: float = 1e-8):
  """REINFORCE++-baseline = DLER's batch-wise normalisation (DLER arXiv:2510.15110
  Eq. 3; verl `reinforce_plus_plus_baseline`).

  a_i = R_i − mean_g R (group mean, no group std), broadcast over the tokens of response i, then
  whitened over all valid tokens of the batch (token-weighted: longer responses count more, as
  in verl; the paper writes the statistics per sample). A group whose rewards are all equal has
  a = 0 before whitening and so A = −mean/std ≠ 0 after it, as in verl. G = 1 gives a = 0
  (verl passes R_i through).

  Args:
    reward_out: reads `rewards_b` [B].
    batch: unused (uniform signature).
    mask_bt: [B, T] float32 loss mask; the whitening statistics are taken under it.
    group_size: G (static).
    eps: added to the variance (verl 1e-8).

  Returns:
    (adv_bt [B, T] float32, metrics).
  """
  del batch
  r_pg = types.to_groups(reward_out.rewards_b.astype(jnp.float32), group_size)
  adv_bt = masked_whiten_bt(broadcast_bt(centered_pg(r_pg), mask_bt), mask_bt, eps=eps)
  return adv_bt, group_metrics(r_pg, adv_bt, mask_bt)
