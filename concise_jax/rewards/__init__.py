"""Rewards: registry `REWARDS`; importing the family modules runs their registrations."""
from concise_jax.rewards.base import REWARDS
from concise_jax.rewards import correctness  # noqa: F401  (registers)
from concise_jax.rewards import length  # noqa: F401  (registers)

__all__ = ["REWARDS"]
