"""GTPO advantage: conflict-token weights and an entropy gate folded into a token advantage.

GTPO (Simoni et al., arXiv:2508.03772) is a REINFORCE loss (ratio ≡ 1,
registered as the policy loss "reinforce") on a token-level advantage A_i' · λ_{i,t}; all of
its novelty is in that advantage, so it lives here and composes with any aggregation
(`configs/gtpo.py` uses seq_mean_token_mean, the code's 1/|o_i| then mean over completions).
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.advantages.base import ADVANTAGES
from concise_jax.advantages.grpo import centered_pg


def _leading_conflicts_pgt(tok_pgt, valid_pgt, sign_pg):
  """Per group: token t of completion i is shared (same id, same position) with a valid
  completion of positive AND one of negative advantage, kept only as a leading run from t = 0."""
  same_pgjt = (tok_pgt[:, :, None, :] == tok_pgt[:, None, :, :]) & valid_pgt[:, None, :, :]
  pos_pgt = (same_pgjt & (sign_pg > 0)[:, None, :, None]).any(axis=2)
  neg_pgt = (same_pgjt & (sign_pg < 0)[:, None, :, None]).any(axis=2)
  conflict_pgt = pos_pgt & neg_pgt & valid_pgt & (sign_pg != 0)[..., None]
  return jnp.cumprod(conflict_pgt.astype(jnp.int32), axis=-1) > 0


def _reverse_rows(x_bt, len_b):
  """x[i, len_i − 1 − r] at column r (r < len_i): rows aligned at their ends; an involution."""
  idx_bt = jnp.clip(len_b[:, None] - 1 - jnp.arange(x_bt.shape[1])[None, :], 0,
                    x_bt.shape[1] - 1)
  return jnp.take_along_axis(x_bt, idx_bt, axis=1)


def conflict_masks_bt(tokens_bt, mask_bt, sign_b, group_size):
  """(forward conflicts, reverse conflicts), [B, T] bool: shared prefixes and shared suffixes."""
  len_b = mask_bt.sum(axis=1).astype(jnp.int32)
  valid_bt = mask_bt > 0
  sign_pg = types.to_groups(sign_b, group_size)
  grp = lambda x: types.to_groups(x, group_size)
  fwd_bt = types.from_groups(_leading_conflicts_pgt(grp(tokens_bt), grp(valid_bt), sign_pg))
  rev_valid_bt = jnp.arange(mask_bt.shape[1])[None, :] < len_b[:, None]
  rev_run_bt = types.from_groups(_leading_conflicts_pgt(
      grp(_reverse_rows(tokens_bt, len_b)), grp(rev_valid_bt), sign_pg))
  rev_bt = _reverse_rows(rev_run_bt, len_b) & rev_valid_bt
  return fwd_bt, rev_bt


@ADVANTAGES.register("gtpo", needs=("entropy",))
def gtpo(reward_out: types.RewardOutput, batch: types.Rollout, mask_bt: jax.Array, *,
         group_size: int, w_conflict: float = 2.0, ent_threshold: float = 0.7,
         ent_scale: float = 0.1, divide_by_conflicts: bool = True, std_ddof: int = 1,
         eps: float = 1e-6):
  """GTPO token advantage (Simoni et al., arXiv:2508.03772, authors' code).

  1. A_i = GRPO group-normalised advantage.
  2. Entropy gate (policy-collapse guard): A_i' = A_i − ent_scale·⟨H⟩_i if ⟨H⟩_i ≤
     ent_threshold, else 0 (⟨H⟩_i = mean token entropy). As in the code, the gate reads only
     the current entropy (the README's ⟨H⟩_init branch is not in the code path); note that an
     all-equal group therefore gets −ent_scale·⟨H⟩_i, not 0.
  3. Conflict tokens — same id at the same position in a positive and a negative completion
     of the group, counted only as the leading run from the start (forward) and from each
     sequence's end (reverse): their negative update is skipped (λ = 0) and positive one
     amplified (λ = w_conflict); λ_fwd · λ_rev multiply. Conflicts use the sign of A_i.
  4. With `divide_by_conflicts` (the code; not in the README formula) the completion's
     advantage is divided by max(#conflict tokens, 1).
  Inferred: ⟨H⟩_i is the sampling policy's entropy (`Rollout.features["entropy"]`), equal to the
  code's current-policy entropy for on-policy updates; sign-alignment uses the loss mask.

  Args:
    reward_out: reads `rewards_b` [B].
    batch: reads `tokens_bt` [B, T] and `features["entropy"]` [B, T] (declared need).
    mask_bt: [B, T] float32 loss mask.
    group_size: G (static).
    w_conflict: λ on conflict tokens of positive completions (code W_RAW = 2.0).
    ent_threshold: entropy gate (code 0.7 ≈ ln 2).
    ent_scale: γ of the entropy penalty on the advantage (code 0.1).
    divide_by_conflicts: divide by the number of conflict tokens (code) or not (README).
    std_ddof: group std degrees of freedom of step 1.
    eps: added to the group std.

  Returns:
    (adv_bt [B, T] float32, metrics incl. adv/conflict_frac, adv/entropy_gated_frac).
  """
  entropy_bt = types.feature(batch, "entropy", "advantage 'gtpo' (the entropy gate)")
  r_pg = types.to_groups(reward_out.rewards_b.astype(jnp.float32), group_size)
  std_p1 = (r_pg.std(axis=1, ddof=std_ddof, keepdims=True) if group_size > std_ddof
            else jnp.zeros((r_pg.shape[0], 1), jnp.float32))
  adv_b = types.from_groups(centered_pg(r_pg) / (std_p1 + eps))
  n_b = mask_bt.sum(axis=1)
  ent_b = (jnp.where(mask_bt > 0, entropy_bt, 0.0) * mask_bt).sum(axis=1) / (
      jnp.maximum(n_b, 1.0))
  gated_b = ent_b > ent_threshold
  adv_gated_b = jnp.where(gated_b, 0.0, adv_b - ent_scale * ent_b)
  sign_b = jnp.sign(adv_b)
  fwd_bt, rev_bt = conflict_masks_bt(batch.tokens_bt, mask_bt, sign_b, group_size)
  weight_on = jnp.where(sign_b > 0, w_conflict, 0.0)[:, None]
  lam_bt = jnp.where(fwd_bt, weight_on, 1.0) * jnp.where(rev_bt, weight_on, 1.0)
  num_conflicts_b = (fwd_bt | rev_bt).sum(axis=1).astype(jnp.float32)
  scale_b = 1.0 / jnp.maximum(num_conflicts_b, 1.0) if divide_by_conflicts else 1.0
  adv_bt = (adv_gated_b * scale_b)[:, None] * lam_bt * mask_bt
  metrics = {"adv/conflict_frac": ((fwd_bt | rev_bt) * mask_bt).sum() / jnp.maximum(
                 mask_bt.sum(), 1.0),
             "adv/entropy_gated_frac": (gated_b & (n_b > 0)).mean(),
             "adv/abs_mean": jnp.abs(adv_bt).sum() / jnp.maximum(mask_bt.sum(), 1.0)}
  return adv_bt, metrics
