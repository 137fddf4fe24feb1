"""Rewards: registry `REWARDS`; importing the family modules runs their registrations."""
from concise_jax.rewards.base import REWARDS
from concise_jax.rewards import correctness  # noqa: F401  (registers)
from concise_jax.rewards import length  # noqa: F401  (registers)
from concise_jax.rewards import dler  # noqa: F401  (registers)
from concise_jax.rewards import drpo  # noqa: F401  (registers)
from concise_jax.rewards import history  # noqa: F401  (registers)
from concise_jax.rewards import penalties  # noqa: F401  (registers)
from concise_jax.rewards import reflection  # noqa: F401  (registers)
from concise_jax.rewards import ceeh  # noqa: F401  (registers)
from concise_jax.rewards import decs  # noqa: F401  (registers)
from concise_jax.rewards import dot  # noqa: F401  (registers)
from concise_jax.rewards import laser  # noqa: F401  (registers)
from concise_jax.rewards import pear  # noqa: F401  (registers)
from concise_jax.rewards import l1  # noqa: F401  (registers)
from concise_jax.rewards import efficient  # noqa: F401  (registers)

__all__ = ["REWARDS"]
