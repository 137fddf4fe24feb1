"""HAPO: length rewards relative to each prompt's own history of correct lengths (arXiv:2505.11225).

State (`init_history`, the reward's own): `len_n` holds h[n], the history length of prompt n,
and `count_n` how many correct answers formed it; `count_n == 0` is HAPO's "null" (the
official code's sentinel 100000). Rewards are computed from the history BEFORE this batch; the
history is then updated from the batch's correct answers (scatter over `prompt_index_b`, so a
prompt appearing in two groups of one batch is handled too).
"""
import math

import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def init_history(num_prompts: int, **options) -> dict:
  """{"len_n": h [N] float32, "count_n": correct answers behind h [N] float32}, all unseen."""
  del options
  return {"len_n": jnp.zeros((num_prompts,), jnp.float32),
          "count_n": jnp.zeros((num_prompts,), jnp.float32)}


def _update_min(state: dict, idx_b, len_b, correct_b) -> dict:
  """Mode "min": h[n] = min(h[n], shortest correct length of n in this batch)."""
  big = jnp.float32(jnp.inf)
  batch_min_n = jnp.full_like(state["len_n"], big).at[idx_b].min(
      jnp.where(correct_b, len_b, big))
  new_n = jnp.zeros_like(state["count_n"]).at[idx_b].add(correct_b.astype(jnp.float32))
  old_h_n = jnp.where(state["count_n"] > 0, state["len_n"], big)
  len_n = jnp.where(new_n > 0, jnp.minimum(old_h_n, batch_min_n), state["len_n"])
  return {"len_n": len_n, "count_n": state["count_n"] + new_n}


def _update_mean(state: dict, idx_b, len_b, correct_b) -> dict:
  """Mode "mean": h[n] = mean of every correct length of n seen so far (count-weighted)."""
  sum_n = jnp.zeros_like(state["len_n"]).at[idx_b].add(jnp.where(correct_b, len_b, 0.0))
  new_n = jnp.zeros_like(state["count_n"]).at[idx_b].add(correct_b.astype(jnp.float32))
  count_n = state["count_n"] + new_n
  total_n = state["len_n"] * state["count_n"] + sum_n
  len_n = jnp.where(new_n > 0, total_n / jnp.maximum(count_n, 1.0), state["len_n"])
  return {"len_n": len_n, "count_n": count_n}


HISTORY_UPDATES = {"min": _update_min, "mean": _update_mean}


def update_history(state: dict, batch: types.Rollout, mode: str) -> dict:
  """The HAPO history after scoring `batch` (only correct answers contribute)."""
  if mode not in HISTORY_UPDATES:
    raise KeyError(f"unknown HAPO history mode {mode!r}; valid choices: "
                   f"{', '.join(sorted(HISTORY_UPDATES))}")
  return HISTORY_UPDATES[mode](state, batch.prompt_index_b,
                               batch.length_b.astype(jnp.float32), batch.correct_b)


def _history_b(state: dict, batch: types.Rollout):
  """(h [B] float32 floored at 1 token, seen [B] bool) for each sample's prompt.

  A zero-length history (an empty correct answer) would make L/h a 0/0; it is treated as one
  token, which changes nothing for integer lengths ≥ 1.
  """
  idx_b = batch.prompt_index_b
  return jnp.maximum(state["len_n"][idx_b], 1.0), state["count_n"][idx_b] > 0


def cosine_term_b(length_b, h_b, correct_b, correct_floor: float) -> jax.Array:
  """HAPO cosine r_len: c = cos((L/h)·π/2) if L < 2h else −1; correct → max(floor, c), wrong
  → min(0, c). At L = h the term is 0; shorter than history is rewarded, longer penalised."""
  l_b = length_b.astype(jnp.float32)
  c_b = jnp.where(l_b < 2.0 * h_b, jnp.cos(l_b / h_b * (math.pi / 2)), -1.0)
  return jnp.where(correct_b, jnp.maximum(correct_floor, c_b), jnp.minimum(0.0, c_b))


def linear_term_b(length_b, h_b, correct_b, tolerance: float, correct_floor: float,
                  wrong_floor: float) -> jax.Array:
  """HAPO linear r_len with a tolerance band [h, (1+τ)h) that is neither rewarded nor punished.

  correct: 1 − L/h below h, 0 in the band, max(correct_floor, −(L − (1+τ)h)/h) above;
  wrong:   0 below (1+τ)h, max(wrong_floor, −(L − (1+τ)h)/h) above.
  """
  l_b = length_b.astype(jnp.float32)
  over_b = -(l_b - (1.0 + tolerance) * h_b) / h_b          # < 0 above the band
  above_b = l_b >= (1.0 + tolerance) * h_b
  correct_term_b = jnp.where(l_b < h_b, 1.0 - l_b / h_b,
                             jnp.where(above_b, jnp.maximum(correct_floor, over_b), 0.0))
  wrong_term_b = jnp.where(above_b, jnp.maximum(wrong_floor, over_b), 0.0)
  return jnp.where(correct_b, correct_term_b, wrong_term_b)


def _hapo_output(name, batch, state, len_term_b, length_weight, mode):
  """r = I(correct) + w·r_len (r_len = 0 for a prompt without history), then the update."""
  _, seen_b = _history_b(state, batch)
  r_len_b = jnp.where(seen_b, len_term_b, 0.0)
  r_b = batch.correct_b.astype(jnp.float32) + length_weight * r_len_b
  new_state = update_history(state, batch, mode)
  return types.make_reward_output(batch, r_b), new_state, {
      f"{name}/seen_frac": seen_b.astype(jnp.float32).mean(),
      f"{name}/len_term_mean": r_len_b.mean()}


@REWARDS.register("hapo_cosine", init=init_history)
def hapo_cosine(batch: types.Rollout, state: dict, *, group_size: int,
                length_weight: float = 1.0, mode: str = "min", correct_floor: float = -0.7):
  """HAPO, cosine variant (Huang, Zhang, Cardie, "HAPO: Training Language Models to Reason
  Concisely via History-Aware Policy Optimization", arXiv:2505.11225).

  r = I(correct) + w_lr · r_len with r_len from `cosine_term_b` against h[n], the prompt's
  history length, and r_len = 0 while the prompt has no correct answer on record. The −0.7
  floor keeps every correct answer above every wrong one when w_lr ≤ 1. Defaults are the
  official code's (w_lr 1, mode "min"); its optional n-gram repetition term (default weight 0)
  is left out.

  Args:
    batch: the rollout; reads `correct_b`, `length_b`, `prompt_index_b` [B].
    state: its history (`init_history`); read, then updated.
    group_size: unused (uniform signature).
    length_weight: w_lr.
    mode: history update, "min" (shortest correct so far) or "mean" (running mean).
    correct_floor: lower bound of a correct answer's r_len.

  Returns:
    (RewardOutput with rewards_b [B], updated state,
     {"hapo_cosine/seen_frac", "hapo_cosine/len_term_mean"}).
  """
  del group_size
  h_b, _ = _history_b(state, batch)
  term_b = cosine_term_b(batch.length_b, h_b, batch.correct_b, correct_floor)
  return _hapo_output("hapo_cosine", batch, state, term_b, length_weight, mode)


@REWARDS.register("hapo_linear", init=init_history)
def hapo_linear(batch: types.Rollout, state: dict, *, group_size: int,
                length_weight: float = 1.0, mode: str = "min", tolerance: float = 0.1,
                correct_floor: float = -0.7, wrong_floor: float = -1.0):
  """HAPO, linear variant (arXiv:2505.11225): `linear_term_b` against h[n].

  Same history and update as `hapo_cosine`; the length term is piecewise linear with a
  tolerance band of τ = 0.1 (official code's default) above the history length.

  Args:
    batch: the rollout; reads `correct_b`, `length_b`, `prompt_index_b` [B].
    state: its history (`init_history`); read, then updated.
    group_size: unused (uniform signature).
    length_weight: w_lr.
    mode: history update, "min" or "mean".
    tolerance: τ, relative width of the neutral band [h, (1+τ)h).
    correct_floor: lower bound of a correct answer's r_len.
    wrong_floor: lower bound of a wrong answer's r_len.

  Returns:
    (RewardOutput with rewards_b [B], updated state,
     {"hapo_linear/seen_frac", "hapo_linear/len_term_mean"}).
  """
  del group_size
  h_b, _ = _history_b(state, batch)
  term_b = linear_term_b(batch.length_b, h_b, batch.correct_b, tolerance, correct_floor,
                         wrong_floor)
  return _hapo_output("hapo_linear", batch, state, term_b, length_weight, mode)
