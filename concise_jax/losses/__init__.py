"""Policy losses, loss aggregations and KL estimators (one registry each) and their assembly."""
from concise_jax.losses.base import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from concise_jax.losses import aggregation  # noqa: F401  (registers)
from concise_jax.losses import kl  # noqa: F401  (registers)
from concise_jax.losses import policy  # noqa: F401  (registers)
from concise_jax.losses import cispo  # noqa: F401  (registers)
from concise_jax.losses import dispo  # noqa: F401  (registers)
from concise_jax.losses import distill  # noqa: F401  (registers)
from concise_jax.losses import reinforce  # noqa: F401  (registers)
from concise_jax.losses import sequence  # noqa: F401  (registers)
from concise_jax.losses.objective import compute_loss, loss_mask, make_loss_fn

__all__ = ["AGGREGATIONS", "KL_ESTIMATORS", "POLICY_LOSSES", "compute_loss", "loss_mask",
           "make_loss_fn"]
