"""Budget schedules: the decode budget (max new tokens) of each prompt at each step.

    budget_p = schedule(step, state, prompt_index_p, *, max_new_tokens, **options)  # [P] int32

The sampler compiles once for `rollout.max_new_tokens` and takes a per-row budget, so a schedule
never recompiles anything. Step-only schedules (decay, rounds, cycles) are stateless (`state` is
`()`). A per-prompt controller (PALU, DA-DLER caps) registers `init=PerPromptTable(update)`: its
state is a budget table ([N] int32, -1 = prompt not seen yet) and `update(budget_n, batch, *,
group_size, max_new_tokens, **options)` runs after each scored batch (`components.make_score`).
Budgets are clipped to [1, max_new_tokens]. With `config.budget.prompt_template` set (L1), the
budget is *stated in the prompt* and recorded in `Rollout.budget_b` instead of capping the decode.
"""
import dataclasses
from collections.abc import Callable

import jax.numpy as jnp

from concise_jax.registry import Registry

BUDGET_SCHEDULES = Registry("budget schedule")


@dataclasses.dataclass(frozen=True)
class PerPromptTable:
  """init and update of a per-prompt budget table, kept together as optax keeps them."""
  update: Callable   # (budget_n, batch, *, group_size, max_new_tokens, **options) -> budget_n

  def __call__(self, num_prompts: int, **options):
    del options
    return jnp.full((num_prompts,), -1, jnp.int32)
