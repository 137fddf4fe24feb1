"""Per-prompt budget controllers: a budget per dataset prompt, updated after each scored batch."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.budgets.base import BUDGET_SCHEDULES, PerPromptTable


def stored_budget_p(budget_n, prompt_index_p, max_new_tokens: int) -> jax.Array:
  """The table's budget of each prompt; the rollout cap for prompts not seen yet (-1)."""
  b_p = budget_n[prompt_index_p]
  return jnp.where(b_p > 0, jnp.minimum(b_p, max_new_tokens), max_new_tokens).astype(jnp.int32)


def _group_stats(batch: types.Rollout, group_size: int):
  correct_pg = types.to_groups(batch.correct_b.astype(jnp.float32), group_size)
  length_pg = types.to_groups(batch.length_b.astype(jnp.float32), group_size)
  index_p = types.to_groups(batch.prompt_index_b, group_size)[:, 0]
  return correct_pg, length_pg, index_p


def palu_update(budget_n, batch: types.Rollout, *, group_size: int, max_new_tokens: int,
                target_accuracy: float, quantile: float, min_budget: int):
  """PALU's two-regime budget step (Lagrange multiplier truncated to its extremes).

  Performance satisfied (group accuracy ≥ C = `target_accuracy`) → shrink: L[n] = the
  `quantile` of the group's correct lengths (never below `min_budget`); violated → relax:
  L[n] = the rollout cap. Inferred: C = 0.5, the median, and "relax to the cap" (the paper's
  quantile, C and relaxation rule are not found); the reward stays the plain correctness, so a
  cut answer scores 0.
  """
  correct_pg, length_pg, index_p = _group_stats(batch, group_size)
  ok_p = correct_pg.mean(axis=1) >= target_accuracy
  correct_len_pg = jnp.where(correct_pg > 0, length_pg, jnp.nan)
  q_p = jnp.nanquantile(correct_len_pg, quantile, axis=1)
  shrunk_p = jnp.clip(jnp.ceil(jnp.nan_to_num(q_p, nan=max_new_tokens)), min_budget,
                      max_new_tokens)
  new_p = jnp.where(ok_p, shrunk_p, max_new_tokens).astype(jnp.int32)
  return budget_n.at[index_p].set(new_p)


@BUDGET_SCHEDULES.register("palu", init=PerPromptTable(palu_update))
def palu(step, budget_n, prompt_index_p, *, max_new_tokens: int, target_accuracy: float = 0.5,
         quantile: float = 0.5, min_budget: int = 8):
  """PALU (Gao et al., arXiv:2510.10168): each prompt's own budget L[n] (`palu_update`).

  Options (read by the update): target_accuracy C, the group accuracy at which the budget
  shrinks; quantile of the group's correct lengths it shrinks to; min_budget in tokens.
  """
  del step, target_accuracy, quantile, min_budget
  return stored_budget_p(budget_n, prompt_index_p, max_new_tokens)


def da_dler_caps_update(budget_n, batch: types.Rollout, *, group_size: int,
                        max_new_tokens: int, threshold: float, easy_cap: float):
  """A prompt whose last group was easy (accuracy ≥ `threshold`) is next sampled under the
  small cap, otherwise under the rollout cap (the paper: {2000, 4000} around p = 0.5).

  Inferred: the paper applies the caps within the same batch (the `da_dler` reward does that);
  as a decode cap the tier must come from the prompt's previous visit. `easy_cap`: tokens, or
  a fraction (≤ 1) of the rollout cap; unseen prompts get the rollout cap.
  """
  correct_pg, _, index_p = _group_stats(batch, group_size)
  small = easy_cap * max_new_tokens if easy_cap <= 1.0 else easy_cap
  easy_p = correct_pg.mean(axis=1) >= threshold
  new_p = jnp.where(easy_p, jnp.round(small), max_new_tokens).astype(jnp.int32)
  return budget_n.at[index_p].set(new_p)


@BUDGET_SCHEDULES.register("da_dler_caps", init=PerPromptTable(da_dler_caps_update))
def da_dler_caps(step, budget_n, prompt_index_p, *, max_new_tokens: int, threshold: float = 0.5,
                 easy_cap: float = 0.5):
  """Difficulty-Aware DLER caps (arXiv:2510.15110) as a per-prompt decode cap.

  Options (read by `da_dler_caps_update`): threshold, the previous group accuracy at which a
  prompt counts as easy; easy_cap, easy prompts' cap (tokens, or a fraction ≤ 1 of the cap).
  """
  del step, threshold, easy_cap
  return stored_budget_p(budget_n, prompt_index_p, max_new_tokens)
