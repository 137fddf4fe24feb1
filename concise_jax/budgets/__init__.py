"""Budget schedules (registry `BUDGET_SCHEDULES`); per-prompt ones own their budget table."""
from concise_jax.budgets.base import BUDGET_SCHEDULES, PerPromptTable
from concise_jax.budgets import per_prompt  # noqa: F401  (registers)
from concise_jax.budgets import schedules  # noqa: F401  (registers)

__all__ = ["BUDGET_SCHEDULES", "PerPromptTable"]
