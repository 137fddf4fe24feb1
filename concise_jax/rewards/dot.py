"""DOT — Dynamic Outlier Truncation (Wu et al., arXiv:2601.03969).

During RLVR already-solved prompts drift to longer answers. DOT has no length penalty: inside
groups that are entirely correct it cuts the extreme-length tail to T_g = ⌊mean + α·std⌋ tokens
(masking the rest out of the loss) and re-scores the cut text with the verifier, which usually
fails because the answer was cut off.

The reward declares two host needs: "cut_length" ([B] int32, `cut_lengths_b` run on the host
with this reward's options) and "cut_correct" ([B] bool, the verifier on the decoded cut
text); it then only reads them, so host and jit can never disagree on where a row was cut.
Its state (`init_pass_rates`) is the pass-rate ring buffer of DOT's predictive oversampling;
the oversampling itself and DOT's KL-Cov loss are not implemented.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def cut_lengths_b(length_b: jax.Array, correct_b: jax.Array, *, group_size: int,
                  alpha: float = 3.0, margin: float = 32.0, success_threshold: float = 1.0,
                  min_relative_margin: int = 16) -> jax.Array:
  """[B] int32 cut lengths; equal to `length_b` for rows DOT leaves alone.

  In groups with accuracy ≥ `success_threshold`: T_g = ⌊mean_g(L) + α·std_g(L)⌋ (std with
  ddof=1; 0 when G = 1), and row i is cut to T_g when L[i] − T_g ≥ m_i, with m_i = margin if
  margin ≥ 1 else max(⌊L[i]·margin⌋, min_relative_margin) (DOT's length_truncation.py).
  """
  len_pg = types.to_groups(length_b.astype(jnp.float32), group_size)
  acc_p = types.to_groups(correct_b.astype(jnp.float32), group_size).mean(axis=1)
  std_p = len_pg.std(axis=1, ddof=1) if group_size > 1 else jnp.zeros(len_pg.shape[:1])
  t_p = jnp.floor(len_pg.mean(axis=1) + alpha * std_p)
  t_b = jnp.repeat(t_p, group_size)
  on_b = jnp.repeat(acc_p >= success_threshold, group_size)
  if margin >= 1:
    m_b = jnp.full(length_b.shape, margin, jnp.float32)
  else:
    m_b = jnp.maximum(jnp.floor(length_b * margin), min_relative_margin).astype(jnp.float32)
  cut_b = on_b & (length_b - t_b >= m_b)
  return jnp.where(cut_b, t_b, length_b).astype(jnp.int32)


def init_pass_rates(num_prompts: int, *, pass_rate_window: int = 16, **options) -> dict:
  """{"rate_w": [W] float32 ring buffer of batch pass rates, "count": [] int32 written}."""
  del num_prompts, options
  return {"rate_w": jnp.zeros((pass_rate_window,), jnp.float32),
          "count": jnp.zeros((), jnp.int32)}


def _record_pass_rate(state: dict, r_b: jax.Array, group_size: int) -> dict:
  """Appends this batch's share of groups with reward std > 0 to the ring buffer that DOT's
  predictive oversampling reads (the sampler side is not implemented here)."""
  r_pg = types.to_groups(r_b, group_size)
  rate = (r_pg.max(axis=1) > r_pg.min(axis=1)).astype(jnp.float32).mean()
  w = state["rate_w"].shape[0]
  return {"rate_w": state["rate_w"].at[state["count"] % w].set(rate),
          "count": state["count"] + 1}


@REWARDS.register("dot", init=init_pass_rates, needs=("cut_length", "cut_correct"))
def dot(batch: types.Rollout, state: dict, *, group_size: int,
        alpha: float = 3.0, margin: float = 32.0, success_threshold: float = 1.0,
        min_relative_margin: int = 16, correct_reward: float = 1.0, wrong_reward: float = 0.0,
        pass_rate_window: int = 16):
  """DOT outcome reward on the truncated batch (arXiv:2601.03969).

  r[i] = correct_reward if (cut ? cut_correct[i] : correct[i]) else wrong_reward, where a row is
  cut when cut_length[i] < L[i] (only correct rows can be: DOT cuts all-correct groups only);
  loss_mask_bt zeroes tokens at positions ≥ cut_length. `alpha`, `margin`,
  `success_threshold`, `min_relative_margin` configure the host's "cut_length" provider
  (`cut_lengths_b`).

  Args:
    batch: reads correct_b, length_b, mask_bt, features["cut_length"], ["cut_correct"].
    state: its pass-rate ring (`init_pass_rates`); the batch pass rate is appended.
    group_size: G (static).
    alpha, margin, success_threshold, min_relative_margin: see `cut_lengths_b`.
    correct_reward, wrong_reward: the outcome values.
    pass_rate_window: W, the length of the pass-rate ring buffer (state shape).

  Returns:
    (RewardOutput with rewards_b and loss_mask_bt, state, metrics: dot/cut_frac,
     dot/cut_tokens_frac, dot/recheck_pass).
  """
  del alpha, margin, success_threshold, min_relative_margin  # configure the host provider
  del pass_rate_window  # the state's shape
  cut_len_b = jnp.minimum(types.feature(batch, "cut_length", "reward 'dot'"), batch.length_b)
  cut_correct_b = types.feature(batch, "cut_correct", "reward 'dot'")
  cut_b = batch.correct_b & (cut_len_b < batch.length_b)
  ok_b = jnp.where(cut_b, cut_correct_b.astype(bool), batch.correct_b)
  r_b = jnp.where(ok_b, correct_reward, wrong_reward).astype(jnp.float32)
  pos_bt = jnp.arange(batch.mask_bt.shape[1])[None, :]
  keep_bt = jnp.where(cut_b[:, None], pos_bt < cut_len_b[:, None], True).astype(jnp.float32)
  out = types.make_reward_output(batch, r_b, loss_mask_bt=keep_bt)
  cut_f = cut_b.astype(jnp.float32)
  cut_tokens = ((1.0 - keep_bt) * batch.mask_bt).sum()
  metrics = {"dot/cut_frac": cut_f.mean(),
             "dot/cut_tokens_frac": cut_tokens / jnp.maximum(batch.mask_bt.sum(), 1.0),
             "dot/recheck_pass": (cut_f * ok_b).sum() / jnp.maximum(cut_f.sum(), 1.0)}
  return out, _record_pass_rate(state, r_b, group_size), metrics
