"""Overlong filtering: truncated samples leave the loss (DAPO, arXiv:2503.14476 §3.4).

This is a per-SAMPLE mask, so it is not a group filter (those keep or drop whole groups and
drive the refill loop). It is a config switch, `config.loss.mask_truncated`, that the update
folds into the per-row keep mask before `losses.loss_mask`: a truncated response still counts
in its group's reward statistics (its siblings' advantages are unchanged) but contributes no
loss tokens, numerator and denominator alike. The reward is never touched. DAPO's best run does
NOT use it (verl FAQ); TRL calls it `mask_truncated_completions`.
"""
import jax
import jax.numpy as jnp

from concise_jax import types


def mask_truncated(keep_b: jax.Array, batch: types.Rollout) -> jax.Array:
  """keep_b [B] bool with truncated samples (`batch.truncated_b`: no EOS before the cap) off."""
  return jnp.asarray(keep_b, bool) & ~batch.truncated_b.astype(bool)
