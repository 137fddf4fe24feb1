"""Group filters (dynamic sampling): registry `GROUP_FILTERS` and the host-side refill loop."""
from concise_jax.filters.base import GROUP_FILTERS
from concise_jax.filters import dynamic_sampling  # noqa: F401  (registers)
from concise_jax.filters import difficulty  # noqa: F401  (registers)
from concise_jax.filters import overlong
from concise_jax.filters.refill import fill_groups, select_groups

__all__ = ["GROUP_FILTERS", "fill_groups", "overlong", "select_groups"]
