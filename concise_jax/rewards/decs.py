"""DECS — decoupled token rewards against redundant reasoning ("Overthinking Reduction with
Decoupled Rewards and Curriculum Data Scheduling", arXiv:2509.25827).

A judge splits each correct response into chunks and marks every token after the first chunk
that already holds the correct answer as redundant (the host need "redundant_mask", [B, T] float32
in `Rollout.features`, filled by the pluggable judge the `judge` option names,
`train.host_features.RedundancyJudge`). Only redundant tokens lose
part of the bonus β, so necessary reasoning is never pushed shorter.

The curriculum's scalars are the reward's own state (`init_curriculum`: kappa, prev_ratio); mixing
easy groups into the batch by kappa is a sampler concern and not implemented.
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def init_curriculum(num_prompts: int, **options) -> dict:
  """{"kappa": 0, "prev_ratio": 0 (no ratio yet)} as float32 scalars."""
  del num_prompts, options
  return {"kappa": jnp.zeros((), jnp.float32), "prev_ratio": jnp.zeros((), jnp.float32)}


def token_rewards_bt(batch: types.Rollout, red_bt: jax.Array, beta: float) -> jax.Array:
  """R[i,t] = s·(1+β) on necessary tokens, s + β·(1 − L/L_pad) on redundant tokens of correct
  responses, s = I(correct); 0 off the completion mask. L_pad is the padded length T."""
  s_b1 = batch.correct_b.astype(jnp.float32)[:, None]
  l_pad = batch.mask_bt.shape[1]
  shrunk_b1 = s_b1 + beta * (1.0 - batch.length_b.astype(jnp.float32)[:, None] / l_pad)
  red_bt = red_bt * s_b1          # wrong answers have no redundant tokens
  r_bt = (1.0 - red_bt) * s_b1 * (1.0 + beta) + red_bt * shrunk_b1
  return r_bt * batch.mask_bt


def necessary_ratio(batch: types.Rollout, red_bt: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(ρ, any correct): mean over correct responses of the share of non-redundant tokens.

  Inferred: a token-level stand-in for the paper's chunk ratio (index of the first answer
  chunk + 1) / #chunks, which would need the judge's chunk count on the device.
  """
  len_b = batch.length_b.astype(jnp.float32)
  red_b = (red_bt * batch.mask_bt).sum(axis=1)
  ratio_b = jnp.where(len_b > 0, 1.0 - red_b / jnp.maximum(len_b, 1.0), 1.0)
  correct_f = batch.correct_b.astype(jnp.float32)
  n = correct_f.sum()
  return (ratio_b * correct_f).sum() / jnp.maximum(n, 1.0), n > 0


def update_curriculum(state: dict, rho: jax.Array, has_rho: jax.Array,
                      kappa_lr: float) -> dict:
  """κ ← κ + η·(ρ_t − ρ_{t−1}); no change without a correct answer or on the first ratio.

  Inferred: prev_ratio = 0 means "no ratio yet" (ρ > 0 whenever there is a correct answer), and
  the update runs once per scored rollout batch; no clamp, as in the code.
  """
  first = state["prev_ratio"] <= 0
  kappa = jnp.where(has_rho & ~first, state["kappa"] + kappa_lr * (rho - state["prev_ratio"]),
                    state["kappa"])
  return {"kappa": kappa, "prev_ratio": jnp.where(has_rho, rho, state["prev_ratio"])}


@REWARDS.register("decs", init=init_curriculum, needs=("redundant_mask",))
def decs(batch: types.Rollout, state: dict, *, group_size: int,
         beta: float = 0.1, kappa_lr: float = 0.2, judge: str = "first_correct_line"):
  """DECS token rewards (arXiv:2509.25827) and its κ curriculum state.

  token_rewards_bt = `token_rewards_bt`; rewards_b is their mean over the completion (s·(1+β)
  for an empty row), so sequence-level advantages still see the redundancy penalty; the paper's
  own advantage normalises token_rewards_bt per position within the group.

  Args:
    batch: reads correct_b, length_b, mask_bt, features["redundant_mask"].
    state: its curriculum (`init_curriculum`), updated by `update_curriculum`.
    group_size: unused (uniform signature).
    beta: the length bonus β (0.1).
    kappa_lr: η, the curriculum rate (0.2).
    judge: the redundancy judge of the "redundant_mask" provider
      (`train.host_features.REDUNDANCY_JUDGES`).

  Returns:
    (RewardOutput with rewards_b and token_rewards_bt, new state, metrics: decs/redundant_frac,
     decs/necessary_ratio, decs/kappa).
  """
  del group_size, judge  # the judge runs on the host
  red_bt = types.feature(batch, "redundant_mask", "reward 'decs'")
  r_bt = token_rewards_bt(batch, red_bt, beta)
  len_b = batch.length_b.astype(jnp.float32)
  s_b = batch.correct_b.astype(jnp.float32)
  r_b = jnp.where(len_b > 0, r_bt.sum(axis=1) / jnp.maximum(len_b, 1.0), s_b * (1.0 + beta))
  rho, has_rho = necessary_ratio(batch, red_bt)
  new_state = update_curriculum(state, rho, has_rho, kappa_lr)
  red_tokens = (red_bt * batch.mask_bt * s_b[:, None]).sum()
  return types.make_reward_output(batch, r_b, token_rewards_bt=r_bt), new_state, {
      "decs/redundant_frac": red_tokens / jnp.maximum(batch.mask_bt.sum(), 1.0),
      "decs/necessary_ratio": rho, "decs/kappa": new_state["kappa"]}
