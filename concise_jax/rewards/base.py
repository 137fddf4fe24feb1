"""The reward registry and the one signature every reward follows.

    reward(batch: Rollout, state, *, group_size: int, **options)
        -> tuple[RewardOutput, new_state, dict[str, jax.Array]]

- `batch` holds raw per-sample facts (correctness, lengths in tokens, truncation, prompt ids)
  and, in `batch.features`, the host / sampler inputs the reward declared at its registration
  (`needs=("repetitive",)`); everything text-dependent was computed on the host before.
- `state` is the reward's own memory: what its registration's `init(num_prompts, **options)`
  built (dataset-sized tables indexed by `batch.prompt_index_b`, scalars, ...), `()` for a
  stateless reward, which returns it unchanged.
- `group_size` (static int) and the options are bound with `functools.partial` outside `jit`
  (`components.make_score`); every reward accepts `group_size` even if it does not use it.
- Returns the `RewardOutput` (per-sample leaves only), the new state, and a dict of scalar
  metrics (may be empty; keys are prefixed with the reward's name).

Rewards are pure `jnp` and jit-able. Group statistics never cross a prompt (reshape to [P, G]);
batch statistics are plain reductions over B, so they become all-reduces under a mesh.
"""
from concise_jax.registry import Registry

REWARDS = Registry("reward")
