"""GAE for PPO with a critic, extended to unfinished responses (T-PPO, arXiv:2506.15050).

Conventions, per row of the completion (tokens t = 0 … T−1, the first n_i of them generated):

    values_bt1[:, t]  V(s_t), the value of the state before token t (prompt + tokens < t);
                      the extra column t = T exists so that every row has V(s_{n_i})
    rewards_bt        the outcome reward on a finished row's last token, 0 elsewhere
    alive_b           the response is unfinished (cut at a window boundary, not at EOS or the
                      decode cap; the project's `truncated` means "hit the cap", a terminal)

    δ_t = r_t + γ·V(s_{t+1}) − V(s_t)            (t < n_i)
    V(s_{n_i}) = 0 for a finished row; the critic's value of the last generated state for an
        alive row (the Extended-GAE bootstrap; the exact T-PPO equation is unpublished, this
        is GAE on the available prefix, which equals ordinary GAE when every row finished)
    Â_t = δ_t + γλ·Â_{t+1},   value target R_t = Â_t(λ_critic) + V(s_t)

Decoupled λ (VC-PPO arXiv:2503.01491, VAPO arXiv:2504.05118): the critic learns from λ = 1
(Monte-Carlo returns when γ = 1), the policy from λ_policy < 1, VAPO's length-adaptive
λ_policy = 1 − 1/(α·l) with α = 0.05. For an unfinished row l is unknown: `lambda_length_b`
takes the l the caller chose (current length, window end or a running mean — a labelled knob).

Registered critic estimators (`advantages.base.CRITIC_ADVANTAGES`, which return advantages and
value targets): "egae" (decoupled λ, length-adaptive λ_policy, Partial-GAE drop) and "gae"
(ordinary GAE, one λ, for full PPO). The T-PPO update selects one by `tppo.advantage.name`.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.advantages.base import CRITIC_ADVANTAGES, CRITIC_NEEDS


def gae_bt(rewards_bt: jax.Array, values_bt1: jax.Array, mask_bt: jax.Array,
           alive_b: jax.Array, *, gamma: float = 1.0,
           lam: float | jax.Array = 1.0) -> tuple[jax.Array, jax.Array]:
  """(advantages [B, T], value targets [B, T]), both 0 where `mask_bt` is 0.

  Args:
    rewards_bt: [B, T] per-token rewards (outcome on a finished row's last token).
    values_bt1: [B, T + 1] critic values V(s_t) (no gradient flows through them).
    mask_bt: [B, T] 1 on generated tokens, contiguous from t = 0.
    alive_b: [B] bool, unfinished rows bootstrap from V(s_n) instead of 0.
    gamma: discount.
    lam: GAE λ, a scalar or per row [B] (length-adaptive).
  """
  values_bt1 = jax.lax.stop_gradient(values_bt1.astype(jnp.float32))
  mask_bt = mask_bt.astype(jnp.float32)
  t = mask_bt.shape[1]
  length_b = mask_bt.sum(axis=1).astype(jnp.int32)
  is_last_bt = jnp.arange(t)[None, :] == (length_b - 1)[:, None]
  # V(s_{t+1}): the next column, except 0 after a finished row's terminal token.
  next_bt = values_bt1[:, 1:] * jnp.where(is_last_bt & ~alive_b[:, None], 0.0, 1.0)
  delta_bt = (rewards_bt + gamma * next_bt - values_bt1[:, :-1]) * mask_bt
  lam_b = jnp.broadcast_to(jnp.asarray(lam, jnp.float32), mask_bt.shape[:1])

  def back(carry_b, xs):
    delta_b, m_next_b = xs
    adv_b = delta_b + gamma * lam_b * m_next_b * carry_b
    return adv_b, adv_b

  m_next_bt = jnp.concatenate([mask_bt[:, 1:], jnp.zeros_like(mask_bt[:, :1])], axis=1)
  _, adv_tb = jax.lax.scan(back, jnp.zeros(mask_bt.shape[:1], jnp.float32),
                           (delta_bt.T, m_next_bt.T), reverse=True)
  adv_bt = adv_tb.T * mask_bt
  return adv_bt, (adv_bt + values_bt1[:, :-1]) * mask_bt


def decoupled_gae_bt(rewards_bt: jax.Array, values_bt1: jax.Array, mask_bt: jax.Array,
                     alive_b: jax.Array, *, gamma: float = 1.0,
                     lam_policy: float | jax.Array = 0.95,
                     lam_critic: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """(policy advantages with λ_policy, value targets with λ_critic) over the same rollout."""
  adv_bt, _ = gae_bt(rewards_bt, values_bt1, mask_bt, alive_b, gamma=gamma, lam=lam_policy)
  _, targets_bt = gae_bt(rewards_bt, values_bt1, mask_bt, alive_b, gamma=gamma, lam=lam_critic)
  return adv_bt, targets_bt


def lambda_length_b(length_b: jax.Array, *, alpha: float = 0.05) -> jax.Array:
  """VAPO's length-adaptive λ_policy = 1 − 1/(α·l), clipped to [0, 1] (l ≤ 1/α gives 0)."""
  l_b = jnp.maximum(length_b.astype(jnp.float32), 1.0)
  return jnp.clip(1.0 - 1.0 / (alpha * l_b), 0.0, 1.0)


def outcome_rewards_bt(reward_b: jax.Array, mask_bt: jax.Array, alive_b: jax.Array) -> jax.Array:
  """The sequence reward on each finished row's last generated token; alive rows get none."""
  length_b = mask_bt.sum(axis=1).astype(jnp.int32)
  is_last_bt = jnp.arange(mask_bt.shape[1])[None, :] == (length_b - 1)[:, None]
  return jnp.where(is_last_bt & ~alive_b[:, None], reward_b[:, None], 0.0).astype(jnp.float32)


def drop_last_mask_bt(mask_bt: jax.Array, alive_b: jax.Array, drop_last_n: int) -> jax.Array:
  """The policy-loss mask without the last `drop_last_n` tokens of alive rows.

  Partial GAE (arXiv:2301.10920): the tokens just before a cut carry the most bootstrap bias.
  Inferred for T-PPO (its token filter is unpublished); 0 keeps every token.
  """
  if drop_last_n <= 0:
    return mask_bt
  length_b = mask_bt.sum(axis=1)
  cut_bt = jnp.arange(mask_bt.shape[1])[None, :] >= (length_b - drop_last_n)[:, None]
  return jnp.where(alive_b[:, None] & cut_bt, 0.0, mask_bt)


def clipped_value_loss_bt(values_bt: jax.Array, old_values_bt: jax.Array,
                          targets_bt: jax.Array, *, clip: float = 0.5) -> jax.Array:
  """½·max((V − R)², (clip(V, V_old ± c) − R)²) per token: verl's default critic loss (not a
  T-PPO claim), which bounds how far one update moves a value."""
  clipped_bt = old_values_bt + jnp.clip(values_bt - old_values_bt, -clip, clip)
  return 0.5 * jnp.maximum(jnp.square(values_bt - targets_bt),
                           jnp.square(clipped_bt - targets_bt))


LAMBDA_LENGTH_RULES = ("current", "batch_mean")


def _lambda_policy_b(length_b, mask_bt, lam_policy, alpha, lambda_length):
  """λ_policy per row: fixed, or VAPO's 1 − 1/(α·l) with l from the chosen rule.

  An alive row's final length is unknown (labelled choice): "current" uses the tokens so far
  (short for rows cut early), "batch_mean" the mean length of the batch's rows (a stand-in for
  a running mean, the same λ for every row).
  """
  if alpha <= 0:
    return jnp.full(length_b.shape, lam_policy, jnp.float32)
  if lambda_length == "current":
    return lambda_length_b(length_b, alpha=alpha)
  if lambda_length == "batch_mean":
    valid_b = mask_bt.sum(axis=1) > 0
    mean = jnp.sum(jnp.where(valid_b, length_b, 0)) / jnp.maximum(valid_b.sum(), 1)
    return jnp.broadcast_to(lambda_length_b(mean, alpha=alpha), length_b.shape)
  raise ValueError(f"lambda_length={lambda_length!r}; choose from {LAMBDA_LENGTH_RULES}")


def egae_with_targets(rewards_b: jax.Array, values_bt1: jax.Array, completion_mask_bt: jax.Array,
                      loss_mask_bt: jax.Array, alive_b: jax.Array, *, gamma: float = 1.0,
                      lam_policy: float = 0.95, lam_critic: float = 1.0, alpha: float = 0.0,
                      lambda_length: str = "current", drop_last_n: int = 0):
  """Extended GAE with decoupled λ: (policy advantages [B, T], value targets [B, T], metrics).

  Args:
    rewards_b: [B] outcome reward of each finished row (ignored on alive rows).
    values_bt1: [B, T + 1] critic values V(s_0 … s_T).
    completion_mask_bt: [B, T] generated tokens (contiguous from 0; sets each row's length).
    loss_mask_bt: [B, T] the update's loss mask (advantages are zero off it).
    alive_b: [B] bool rows cut at a window boundary (bootstrap from V(s_n)).
    alpha: > 0 selects VAPO's length-adaptive λ_policy (arXiv:2504.05118), else `lam_policy`.
    drop_last_n: Partial-GAE drop of alive rows' last tokens (inferred, arXiv:2301.10920).
  Value targets are zero off the completion mask (the value loss may keep tokens the policy
  loss drops).
  """
  alive_b = alive_b.astype(bool)
  length_b = completion_mask_bt.sum(axis=1).astype(jnp.int32)
  rewards_bt = outcome_rewards_bt(rewards_b.astype(jnp.float32), completion_mask_bt, alive_b)
  lam_b = _lambda_policy_b(length_b, loss_mask_bt, lam_policy, alpha, lambda_length)
  adv_bt, targets_bt = decoupled_gae_bt(rewards_bt, values_bt1, completion_mask_bt, alive_b,
                                        gamma=gamma, lam_policy=lam_b, lam_critic=lam_critic)
  keep_bt = drop_last_mask_bt(loss_mask_bt.astype(jnp.float32), alive_b, drop_last_n)
  adv_bt = adv_bt * keep_bt
  n = jnp.maximum(keep_bt.sum(), 1.0)
  metrics = {"adv/abs_mean": jnp.abs(adv_bt).sum() / n,
             "adv/alive_frac": alive_b.astype(jnp.float32).mean(),
             "adv/lambda_policy_mean": lam_b.mean()}
  return adv_bt, targets_bt, metrics


def _critic_inputs(batch, reader: str):
  """(values [B, T + 1], alive [B] bool) from the batch's features (`base.CRITIC_NEEDS`)."""
  return (types.feature(batch, "values", reader),
          types.feature(batch, "alive", reader).astype(bool))


@CRITIC_ADVANTAGES.register("egae", needs=CRITIC_NEEDS)
def egae(reward_out, batch, mask_bt: jax.Array, *, group_size: int, gamma: float = 1.0,
         lam_policy: float = 0.95, lam_critic: float = 1.0, alpha: float = 0.0,
         lambda_length: str = "current", drop_last_n: int = 0):
  """Extended GAE with decoupled λ (T-PPO, arXiv:2506.15050): (advantages, targets, metrics).

  `egae_with_targets` in the critic-estimator signature (`advantages.base`): the outcome
  reward `reward_out.rewards_b` on each finished row's last token, `batch.mask_bt` the
  completion, `mask_bt` the policy loss mask. Options: `lam_policy` (λ_policy when alpha = 0),
  `lam_critic` (1: Monte-Carlo value targets, VC-PPO arXiv:2503.01491), `alpha` > 0 for VAPO's
  length-adaptive λ_policy (arXiv:2504.05118, 0.05 there) with an unfinished row's length from
  `lambda_length` ("current" | "batch_mean"), `drop_last_n` (Partial GAE, arXiv:2301.10920;
  inferred). Group-free: `group_size` is unused (uniform signature).
  """
  del group_size
  values_bt1, alive_b = _critic_inputs(batch, "egae")
  return egae_with_targets(
      reward_out.rewards_b, values_bt1, batch.mask_bt, mask_bt, alive_b, gamma=gamma,
      lam_policy=lam_policy, lam_critic=lam_critic, alpha=alpha, lambda_length=lambda_length,
      drop_last_n=drop_last_n)


@CRITIC_ADVANTAGES.register("gae", needs=CRITIC_NEEDS)
def plain_gae(reward_out, batch, mask_bt: jax.Array, *, group_size: int, gamma: float = 1.0,
              lam: float = 0.95):
  """Ordinary GAE of PPO (arXiv:1506.02438): one λ for the advantages and the value targets.

  For full PPO on complete responses; an alive row still bootstraps from V(s_n), so on a
  T-PPO batch this is EGAE with λ_critic = λ_policy = `lam` and no length rule or drop.
  """
  del group_size
  values_bt1, alive_b = _critic_inputs(batch, "gae")
  rewards_bt = outcome_rewards_bt(reward_out.rewards_b.astype(jnp.float32), batch.mask_bt,
                                  alive_b)
  adv_bt, targets_bt = gae_bt(rewards_bt, values_bt1, batch.mask_bt, alive_b, gamma=gamma,
                              lam=lam)
  adv_bt = adv_bt * mask_bt.astype(jnp.float32)
  n = jnp.maximum(mask_bt.sum(), 1.0)
  return adv_bt, targets_bt, {"adv/abs_mean": jnp.abs(adv_bt).sum() / n,
                              "adv/alive_frac": alive_b.astype(jnp.float32).mean()}
