"""The reward registry and the one signature every reward follows.

    reward(batch: Rollout, state: RewardState, *, group_size: int, **kwargs)
        -> tuple[RewardOutput, RewardState, dict[str, jax.Array]]

- `batch` holds raw per-sample facts (correctness, lengths in tokens, truncation, prompt ids,
  optional per-token inputs); everything text-dependent was computed on the host before.
- `state` is the cross-step memory (dataset-sized tables indexed by `batch.prompt_index_b`).
  Stateless rewards return it unchanged.
- `group_size` (static int) and the variant's kwargs are bound with `functools.partial` outside
  `jit`; every reward accepts `group_size` even if it does not use it.
- Returns the `RewardOutput` (per-sample leaves only), the new state, and a dict of scalar
  metrics (may be empty; keys are prefixed with the reward's name).

Rewards are pure `jnp` and jit-able. Group statistics never cross a prompt (reshape to [P, G]);
batch statistics are plain reductions over B, so they become all-reduces under a mesh.
"""
from concise_jax.registry import Registry

REWARDS = Registry("reward")
