"""The group-filter registry and the one signature every filter follows.

    group_filter(batch: Rollout, reward_out: RewardOutput, *, group_size: int, **kwargs)
        -> jax.Array   # keep_b [B] bool, constant within each group

A filter never returns a smaller array: shapes stay static inside `jit`. The host loop
(`filters.refill.fill_groups`) gathers kept groups from as many rollout batches as needed until
exactly `groups_per_update` are collected. Filters that decide on correctness read the RAW
`batch.correct_b`, not the shaped reward: an all-wrong group with different lengths has shaped
reward variance but no learning signal about correctness. `reward_out` is in the signature for
filters that genuinely act on rewards.
"""
from concise_jax.registry import Registry

GROUP_FILTERS = Registry("group filter")
