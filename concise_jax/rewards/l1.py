"""L1 / LCPO (Aggarwal & Welleck, arXiv:2503.04697): match a stated budget.

The budget n is stated in the prompt ("Think for {n} tokens."; `config.budget.prompt_template`
with the `uniform` budget schedule) and arrives in `Rollout.budget_b`; rows with n < 0 (no
stated budget) get the plain 0/1 reward.
"""
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def _budget_and_length(batch: types.Rollout):
  if batch.budget_b is None:
    raise ValueError("L1 rewards need Rollout.budget_b: set config.budget.prompt_template "
                     "(e.g. 'Think for {n} tokens.') and a budget schedule such as 'uniform'")
  n_b = batch.budget_b.astype(jnp.float32)
  return n_b, batch.length_b.astype(jnp.float32), batch.budget_b >= 0


@REWARDS.register("l1_exact")
def l1_exact(batch: types.Rollout, state: tuple, *, group_size: int,
             alpha: float = 0.0003):
  """L1-Exact: r = I(correct) − alpha · |n − L| (the code's reward; alpha 0.0003 for n ≤ 4000).

  Args:
    batch: reads `correct_b`, `length_b`, `budget_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    alpha: penalty per token of deviation from the stated budget; scale it with the budget
      range (0.0003 · 4000 = 1.2 at the paper's largest budget).

  Returns:
    (RewardOutput, state, {"l1_exact/abs_dev": mean |n − L| over budgeted rows}).
  """
  del group_size
  n_b, l_b, has_b = _budget_and_length(batch)
  dev_b = jnp.abs(n_b - l_b)
  r_b = batch.correct_b.astype(jnp.float32) - jnp.where(has_b, alpha * dev_b, 0.0)
  mean_dev = jnp.sum(jnp.where(has_b, dev_b, 0.0)) / jnp.maximum(has_b.sum(), 1)
  return types.make_reward_output(batch, r_b), state, {"l1_exact/abs_dev": mean_dev}


@REWARDS.register("l1_max")
def l1_max(batch: types.Rollout, state: tuple, *, group_size: int,
           form: str = "paper", alpha: float = 0.01, delta: float = 0.5):
  """L1-Max: reward correct answers that stay within the stated maximum n.

  form "paper" (the paper's equation; unverified against the code):
    r = I(correct) · clip(alpha · (n − L) + delta, 0, 1), alpha 0.01, delta 0.5.
  form "additive" / "multiplier" (the code's `linear_both` variant; which one trained the paper
  model is not known): sc = clip(alpha · (n − L), −1, 1), d = (sc + 1) / 2 and
    r = I(correct) + d  or  r = I(correct) · max(0, d)   (the code's alpha is 0.0003).

  Args:
    batch: reads `correct_b`, `length_b`, `budget_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    form: "paper", "additive" or "multiplier" (static).
    alpha: slope per token.
    delta: the paper form's offset (reward of a correct answer exactly at the budget).

  Returns:
    (RewardOutput, state, {"l1_max/over_budget": share of budgeted rows with L > n}).
  """
  del group_size
  n_b, l_b, has_b = _budget_and_length(batch)
  c_b = batch.correct_b.astype(jnp.float32)
  if form == "paper":
    shaped_b = c_b * jnp.clip(alpha * (n_b - l_b) + delta, 0.0, 1.0)
  elif form in ("additive", "multiplier"):
    d_b = (jnp.clip(alpha * (n_b - l_b), -1.0, 1.0) + 1.0) / 2.0
    shaped_b = c_b + d_b if form == "additive" else c_b * jnp.maximum(0.0, d_b)
  else:
    raise ValueError(f"unknown l1_max form {form!r}; valid choices: paper, additive, multiplier")
  r_b = jnp.where(has_b, shaped_b, c_b)
  over = jnp.sum(has_b & (l_b > n_b)) / jnp.maximum(has_b.sum(), 1)
  return types.make_reward_output(batch, r_b), state, {"l1_max/over_budget": over}
