"""Advantage estimators: registries `ADVANTAGES` (outcome, GRPO family) and `CRITIC_ADVANTAGES`
(GAE / EGAE, for trainers with a critic); importing the family modules registers them."""
from concise_jax.advantages.base import ADVANTAGES, CRITIC_ADVANTAGES
from concise_jax.advantages import decs  # noqa: F401  (registers)
from concise_jax.advantages import gae  # noqa: F401  (registers the critic estimators)
from concise_jax.advantages import grpo  # noqa: F401  (registers)
from concise_jax.advantages import gtpo  # noqa: F401  (registers)
from concise_jax.advantages import reinforce_pp  # noqa: F401  (registers)
from concise_jax.advantages import rloo  # noqa: F401  (registers)

__all__ = ["ADVANTAGES", "CRITIC_ADVANTAGES"]
