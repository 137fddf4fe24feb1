"""Budget schedules (registry `BUDGET_SCHEDULES`) and per-prompt budget updates."""
from concise_jax.budgets.base import BUDGET_SCHEDULES, BUDGET_UPDATES
from concise_jax.budgets import per_prompt  # noqa: F401  (registers)
from concise_jax.budgets import schedules  # noqa: F401  (registers)

__all__ = ["BUDGET_SCHEDULES", "BUDGET_UPDATES"]
