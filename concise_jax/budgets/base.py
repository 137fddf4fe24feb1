"""Budget schedules: the decode budget (max new tokens) of each prompt at each step.

    budget_p = schedule(step, budget_n, prompt_index_p, *, max_new_tokens, **kwargs)  # [P] int32
    budget_n = BUDGET_UPDATES[name](budget_n, batch, *, group_size, max_new_tokens, **kwargs)

The sampler compiles once for `rollout.max_new_tokens` and takes a per-row budget, so a schedule
never recompiles anything. Step-only schedules (decay, rounds, cycles) ignore `budget_n`;
per-prompt controllers (PALU, DA-DLER caps) keep `RewardState.budget_n` ([N] int32, -1 = prompt
not seen yet) and register an update that runs after each scored batch. Budgets are clipped to
[1, max_new_tokens]. With `config.budget.prompt_template` set (L1), the budget is *stated in
the prompt* and recorded in `Rollout.budget_b` instead of capping the decode.
"""
from concise_jax.registry import Registry

BUDGET_SCHEDULES = Registry("budget schedule")
BUDGET_UPDATES = Registry("budget update")
