"""Loss aggregations: how per-token losses become one scalar (the verl `loss_agg_mode` set).

n_i = Σ_t m[i, t] tokens of sequence i; B' = #sequences with n_i > 0 (dropped groups and
empty rows do not dilute the mean).
"""
import jax
import jax.numpy as jnp

from concise_jax.losses.base import AGGREGATIONS


def masked_bt(loss_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """loss × mask with masked positions exactly 0: inf/NaN in padding must not leak (inf·0=NaN)."""
  return jnp.where(mask_bt > 0, loss_bt * mask_bt, 0.0)


def safe_divide(num: jax.Array, den: jax.Array) -> jax.Array:
  """num / den, and 0 where den == 0 (also in the gradient: no NaN from the unused branch)."""
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


@AGGREGATIONS.register("token_mean")
def token_mean(loss_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """Σ m·L / Σ m over the whole batch (DAPO §3.3 token-level loss; verl `token-mean`).

  Every token weighs the same, so long responses are not down-weighted.
  """
  return safe_divide(masked_bt(loss_bt, mask_bt).sum(), mask_bt.sum())


@AGGREGATIONS.register("seq_mean_token_sum")
def seq_mean_token_sum(loss_bt: jax.Array, mask_bt: jax.Array, *,
                       norm_const: float = 1.0) -> jax.Array:
  """(1 / (B'·norm_const)) Σ_i Σ_t m·L (verl `seq-mean-token-sum`; Dr. GRPO §3 with a constant).

  Dr. GRPO (arXiv:2503.20783) is this with `norm_const = L_max` from the config (the oat/TRL
  convention, mean over sequences): the per-sequence divisor does not depend on |o_i|.
  """
  n_b = mask_bt.sum(axis=1)
  num_seqs = (n_b > 0).sum()
  return safe_divide(masked_bt(loss_bt, mask_bt).sum(), num_seqs * norm_const)


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(loss_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """(1/B') Σ_i (Σ_t m·L / n_i): the GRPO paper's double average (DeepSeekMath Eq. 3).

  Tokens of short responses weigh more (the length bias Dr. GRPO removes).
  """
  n_b = mask_bt.sum(axis=1)
  per_seq_b = safe_divide(masked_bt(loss_bt, mask_bt).sum(axis=1), n_b)
  return safe_divide(per_seq_b.sum(), (n_b > 0).sum())


@AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(loss_bt: jax.Array, mask_bt: jax.Array, *,
                            norm_const: float | None = None) -> jax.Array:
  """Σ_i Σ_t m·L / (B'·C): Dr. GRPO's constant normaliser (arXiv:2503.20783) as verl ≥ 0.7,
  oat and TRL compute it — a mean over the B' non-empty sequences of token sums divided by C.

  C = `norm_const`, or the padded response width T (a static shape, verl's default) when
  None; with C = L_max this equals `seq_mean_token_sum(norm_const=L_max)`. (verl ≤ 0.6 left
  out the 1/B', an lr rescale by the number of sequences.)
  """
  c = float(mask_bt.shape[1]) if norm_const is None else norm_const
  num_seqs = (mask_bt.sum(axis=1) > 0).sum()
  return safe_divide(masked_bt(loss_bt, mask_bt).sum(), num_seqs * c)
