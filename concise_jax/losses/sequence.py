"""Sequence-level importance ratios: GSPO (and LUSPO through the aggregation)."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.losses.aggregation import safe_divide
from concise_jax.losses.base import POLICY_LOSSES


def sequence_log_ratio_b(logp_bt: jax.Array, old_logp_bt: jax.Array,
                         mask_bt: jax.Array) -> jax.Array:
  """log s_i = (1/|y_i|) Σ_t m·(logp − old): the log of GSPO's length-normalised ratio; 0 for
  an empty row."""
  d_bt = jnp.where(mask_bt > 0, (logp_bt - old_logp_bt) * mask_bt, 0.0)
  return safe_divide(d_bt.sum(axis=1), mask_bt.sum(axis=1))


@POLICY_LOSSES.register("gspo")
def gspo(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array, batch: types.Rollout, *,
         group_size: int, eps_low: float = 3e-4, eps_high: float = 4e-4,
         seq_log_ratio_max: float = 10.0):
  """GSPO-token (Zheng et al., arXiv:2507.18071 Eq. 7, 10; verl `gspo`).

  One clipped ratio per sequence, s_i = exp(mean_t (logp − old)), because a sequence-level
  reward gives one sample per sequence, not per token. Token form:
  s_{i,t} = sg(s_i) · exp(logp_t − sg(logp_t)), loss = max(−A·s, −A·clip(s, 1 − eps_low,
  1 + eps_high)). With A_{i,t} = A_i and `seq_mean_token_mean` (GSPO's 1/G Σ_i) its value and
  gradient equal the sequence form's. log s_{i,t} is clamped to ≤ seq_log_ratio_max (verl).

  LUSPO (Liu et al., arXiv:2602.05261; §4b) is this loss with each sequence's term weighted by
  |y_i| and averaged over sequences, i.e. aggregation `seq_mean_token_sum` (norm_const 1):
  (1/B') Σ_i Σ_t ℓ_i = (1/B') Σ_i |y_i|·ℓ_i (see configs/luspo.py). Under `token_mean` GSPO
  becomes that up to the batch factor B'/Σ|y_i|.

  Args:
    logp_bt: [B, T] current log-probs (differentiable).
    adv_bt: [B, T] advantages.
    mask_bt: [B, T] loss mask (the sequence ratio averages over it).
    batch: reads `old_logp_bt`.
    group_size: unused (uniform signature).
    eps_low, eps_high: clip band of s (paper 3e-4 / 4e-4; LUSPO 2e-3 / 2.5e-3).
    seq_log_ratio_max: upper clamp of log s_{i,t}.

  Returns:
    (loss_bt [B, T], aux: clip_frac, seq_ratio).
  """
  del group_size
  old_logp_bt = jax.lax.stop_gradient(batch.old_logp_bt)
  log_s_b = jax.lax.stop_gradient(sequence_log_ratio_b(logp_bt, old_logp_bt, mask_bt))
  log_s_bt = jnp.minimum(log_s_b[:, None] + logp_bt - jax.lax.stop_gradient(logp_bt),
                         seq_log_ratio_max)
  s_bt = jnp.exp(log_s_bt)
  unclipped_bt = -adv_bt * s_bt
  clipped_bt = -adv_bt * jnp.clip(s_bt, 1.0 - eps_low, 1.0 + eps_high)
  loss_bt = jnp.maximum(unclipped_bt, clipped_bt)
  aux = {"clip_frac": (clipped_bt > unclipped_bt).astype(loss_bt.dtype),
         "seq_ratio": jax.lax.stop_gradient(s_bt)}
  return loss_bt, aux
