"""Step-only budget schedules (no per-prompt state)."""
import math

import jax
import jax.numpy as jnp

from concise_jax.budgets.base import BUDGET_SCHEDULES


def _full_p(value, prompt_index_p: jax.Array, max_new_tokens: int) -> jax.Array:
  value = jnp.clip(jnp.round(jnp.asarray(value, jnp.float32)), 1, max_new_tokens)
  return jnp.full(prompt_index_p.shape, value, jnp.int32)


def _tokens(value: float | None, max_new_tokens: int) -> float:
  """A budget knob: None = the rollout cap, a value ≤ 1 = that fraction of it, else tokens."""
  if value is None:
    return float(max_new_tokens)
  return value * max_new_tokens if value <= 1.0 else float(value)


@BUDGET_SCHEDULES.register("none")
def none(step, state, prompt_index_p, *, max_new_tokens: int):
  """Every prompt gets the rollout cap."""
  del step, state
  return _full_p(max_new_tokens, prompt_index_p, max_new_tokens)


@BUDGET_SCHEDULES.register("tlts")
def tlts(step, state, prompt_index_p, *, max_new_tokens: int, start: float | None = None,
         gamma: float = 0.75, period: int = 10, floor: float = 0.25, linear_steps: int = 0):
  """Train Long, Think Short (Hammoud et al., arXiv:2508.08940): a decaying cap.

  B(t) = max(floor, B0 · gamma^⌊t / period⌋) (exponential, the sourced form), or with
  `linear_steps` > 0 a straight line from B0 at t = 0 to `floor` at t = linear_steps (the
  ablated linear schedule; its form is not given). Inferred: gamma 0.75, period 10 steps and a
  floor of a quarter of the cap (the paper's gamma, T and final budget are not found); B0 = the
  rollout cap (the paper's 256 is its cap). `start`/`floor`: tokens, or a fraction (≤ 1) of it.
  """
  del state
  b0, low = _tokens(start, max_new_tokens), _tokens(floor, max_new_tokens)
  t = jnp.asarray(step, jnp.float32)
  if linear_steps > 0:
    value = b0 + (low - b0) * jnp.minimum(t / linear_steps, 1.0)
  else:
    value = jnp.maximum(low, b0 * gamma ** jnp.floor(t / period))
  return _full_p(value, prompt_index_p, max_new_tokens)


@BUDGET_SCHEDULES.register("thinkprune")
def thinkprune(step, state, prompt_index_p, *, max_new_tokens: int,
               limits: tuple = (1.0, 0.75, 0.5), steps_per_round: int = 50):
  """ThinkPrune (arXiv:2504.01296, id unverified): hard caps lowered by rounds.

  Round k = ⌊t / steps_per_round⌋ (the last round repeats) caps generation at limits[k]; with the
  plain correctness reward a cut answer scores 0. The paper's rounds are 4000 → 3000 → 2000
  tokens, each a separate run from the previous checkpoint for ~10 epochs; here they are one run
  (Inferred: `steps_per_round`). `limits`: tokens, or fractions (≤ 1) of the rollout cap.
  """
  del state
  values = jnp.asarray([_tokens(v, max_new_tokens) for v in limits], jnp.float32)
  k = jnp.minimum(jnp.asarray(step, jnp.int32) // steps_per_round, len(limits) - 1)
  return _full_p(values[k], prompt_index_p, max_new_tokens)


@BUDGET_SCHEDULES.register("siri")
def siri(step, state, prompt_index_p, *, max_new_tokens: int, low: float = 0.5,
         high: float | None = None, period: int = 40, start_low: bool = True):
  """SIRI (Wen et al., arXiv:2509.25176): the cap oscillates low ↔ high.

  L(t) = low + (high − low) · (1 ∓ cos(2π t / period)) / 2 — a cosine between the caps; with
  `start_low` the run begins compressed (at `low`), reaches `high` at period/2, and is back at
  `low` at each multiple of the period. Inferred: the caps (half and all of the rollout cap),
  the period and the starting phase are not found in the paper.
  """
  del state
  lo, hi = _tokens(low, max_new_tokens), _tokens(high, max_new_tokens)
  wave = jnp.cos(2.0 * math.pi * jnp.asarray(step, jnp.float32) / period)
  frac = (1.0 - wave) / 2.0 if start_low else (1.0 + wave) / 2.0
  return _full_p(lo + (hi - lo) * frac, prompt_index_p, max_new_tokens)


@BUDGET_SCHEDULES.register("uniform")
def uniform(step, state, prompt_index_p, *, max_new_tokens: int, low: float = 0.25,
            high: float | None = None, seed: int = 0):
  """A budget drawn per prompt and step, uniform on [low, high] tokens (L1's n ~ U{100..4000}).

  Used with `budget.prompt_template` ("Think for {n} tokens."): L1 states the budget in the
  prompt and rewards matching it (rewards/l1.py). The draw is a pure function of (seed, step,
  prompt id), so a resumed run draws the same budgets. `low`/`high`: tokens or fractions ≤ 1.
  """
  del state
  lo, hi = _tokens(low, max_new_tokens), _tokens(high, max_new_tokens)
  key = jax.random.fold_in(jax.random.PRNGKey(seed), jnp.asarray(step, jnp.int32))
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(prompt_index_p)
  u_p = jax.vmap(lambda k: jax.random.uniform(k))(keys)
  return jnp.clip(jnp.floor(lo + (hi - lo + 1.0) * u_p), lo, hi).astype(jnp.int32)
