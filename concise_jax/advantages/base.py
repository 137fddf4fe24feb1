"""The advantage registries and the signatures every estimator follows.

Outcome estimators (GRPO family, `ADVANTAGES`, selected by `config.advantage.name`):

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

Critic estimators (PPO's GAE, T-PPO's Extended GAE, `CRITIC_ADVANTAGES`, selected by
`config.tppo.advantage.name`) take the same arguments and return one thing more, the critic's
value targets:

    advantage(reward_out, batch, mask_bt, *, group_size: int, **kwargs)
        -> tuple[adv_bt, targets_bt, dict[str, jax.Array]]

- they register with `needs=CRITIC_NEEDS`: `batch.features["values"]` [B, T + 1] float32
  holds the critic's V(s_0 … s_T) (the extra column is the bootstrap state of a row cut at
  T) and `batch.features["alive"]` [B] bool marks unfinished rows (cut at a window boundary:
  they bootstrap from V(s_n) and have no outcome reward yet);
- `targets_bt` [B, T] float32 is what the value loss regresses V(s_t) on, zero off the
  completion mask `batch.mask_bt` (the value loss may keep tokens the policy loss drops).

A separate registry because the two families cannot stand in for each other: an outcome
estimator has no value targets to train a critic, and the GRPO trainer has no critic to feed
a critic estimator. `trainer_error` names the valid choices when one is picked for the wrong
trainer.
"""
from concise_jax.registry import Registry

ADVANTAGES = Registry("advantage")
CRITIC_ADVANTAGES = Registry("critic advantage")

# The per-row inputs a critic estimator reads from `Rollout.features` (served by the T-PPO
# update from its critic, not by the host-feature providers).
CRITIC_NEEDS = ("values", "alive")

# The trainers (`config.trainer`) that own a critic; every other one runs outcome estimators.
CRITIC_TRAINERS = ("tppo",)


def trainer_error(name: str, trainer: str) -> str | None:
  """Why advantage `name` cannot run under `trainer` ("" / "grpo" / "tppo"), or None."""
  critic = trainer in CRITIC_TRAINERS
  registry, other = ((CRITIC_ADVANTAGES, ADVANTAGES) if critic
                     else (ADVANTAGES, CRITIC_ADVANTAGES))
  if name in registry:
    return None
  why = ""
  if name in other:
    why = (" it is an outcome estimator with no value targets for the critic;" if critic else
           " it needs a critic's values, which only trainer=tppo has;")
  return (f"advantage {name!r} cannot run under trainer={trainer or 'grpo'!r}:{why} valid "
          f"choices: {', '.join(registry.names())}")
