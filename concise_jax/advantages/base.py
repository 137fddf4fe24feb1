"""The advantage registry and the one signature every estimator follows.

    advantage(reward_out: RewardOutput, batch: Rollout, mask_bt: jax.Array, *,
              group_size: int, **kwargs) -> tuple[jax.Array, dict[str, jax.Array]]

- `reward_out` carries the sequence rewards `rewards_b` [B], optional token rewards
  `token_rewards_bt` [B, T] and per-group flags `group_flags_b` [B].
- `batch` gives raw per-sample and per-token inputs (truncation, token entropy, tokens, ...).
- `mask_bt` [B, T] float32 is the loss mask the update will use (completion mask × reward
  loss mask × group keep mask); batch-level statistics must be taken under it.
- `group_size` (static int) and the estimator's kwargs are bound with `functools.partial`
  outside `jit`.
- Returns `adv_bt` [B, T] float32, zero where `mask_bt` is zero, and a dict of scalar metrics
  (keys prefixed with "adv/").
"""
from concise_jax.registry import Registry

ADVANTAGES = Registry("advantage")
