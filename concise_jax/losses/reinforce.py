"""Plain REINFORCE surrogate (ratio ≡ 1): GTPO's policy loss."""
import jax

from concise_jax import types
from concise_jax.losses.base import POLICY_LOSSES


@POLICY_LOSSES.register("reinforce")
def reinforce(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout,
              *, group_size: int):
  """loss = −A · exp(logp − sg(logp)): value −A, gradient −A·∇logp, never clipped.

  GTPO (arXiv:2508.03772) uses this on-policy ratio; all of its shaping is
  in the advantage (`advantages/gtpo.py`). Off-policy epochs are NOT importance-corrected.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt, batch, group_size: unused (uniform signature).

  Returns:
    (loss_bt [B, T], {}).
  """
  del mask_bt, batch, group_size
  return -adv_bt * jax.numpy.exp(logp_bt - jax.lax.stop_gradient(logp_bt)), {}
