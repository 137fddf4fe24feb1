"""Host side of dynamic sampling: gather kept groups across rollout batches ("refill").

Runs outside `jit` on numpy copies. Every leaf of a gathered pytree must be per sample (leading
axis B = P·G), which holds for `Rollout` and `RewardOutput`; pass e.g. `(batch, reward_out)`.
"""
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def group_keep_p(keep_b: Any, group_size: int) -> np.ndarray:
  """[B] keep mask → [P] bool; a mask that splits a group is a bug in the filter, so it raises."""
  keep_pg = np.asarray(keep_b, bool).reshape(-1, group_size)
  if not (keep_pg.all(axis=1) | ~keep_pg.any(axis=1)).all():
    raise ValueError("group filter returned a keep mask that is not constant within groups")
  return keep_pg[:, 0]


def _rows(group_idx: np.ndarray, group_size: int) -> np.ndarray:
  return (group_idx[:, None] * group_size + np.arange(group_size)).reshape(-1)


def select_groups(tree: Any, keep_b: Any, *, group_size: int) -> Any:
  """The kept groups of one batch, in their original order, as numpy leaves."""
  rows_b = _rows(np.flatnonzero(group_keep_p(keep_b, group_size)), group_size)
  return jax.tree.map(lambda x: np.asarray(x)[rows_b], tree)


def fill_groups(next_batch: Callable[[], Any], keep_fn: Callable[[Any], Any], *,
                group_size: int, groups_per_update: int, max_batches: int = 10):
  """DAPO's "keep generating until the batch is full" loop (DAPO, arXiv:2503.14476 §3.2).

  Calls `next_batch()` (a fresh rollout on new prompts, already scored) until `keep_fn` has
  accepted `groups_per_update` groups in total, then returns exactly that many, in generation
  order; surplus kept groups are dropped, as in verl. If `max_batches` rollouts (≤ 0: no limit)
  still leave it short, the update is padded with rejected groups whose `keep_b` is False, so
  shapes stay static and the loss mask (× keep_b) removes them.

  Args:
    next_batch: returns one pytree with per-sample leaves, e.g. `(rollout, reward_out)`.
    keep_fn: maps that pytree to a [B] bool keep mask (a bound registered group filter).
    group_size: G.
    groups_per_update: P of the update batch.
    max_batches: rollout batches to try before padding (verl `max_num_gen_batches`).

  Returns:
    (gathered pytree with groups_per_update·G rows, keep_b [groups_per_update·G] bool,
     stats dict: num_batches, groups_seen, groups_kept, filled).

  Raises:
    ValueError: if all batches together hold fewer than `groups_per_update` groups.
  """
  trees, kept, rejected = [], [], []      # kept / rejected: (batch number, group index)
  while len(kept) < groups_per_update and (max_batches <= 0 or len(trees) < max_batches):
    tree = next_batch()
    keep_p = group_keep_p(keep_fn(tree), group_size)
    kept += [(len(trees), g) for g in np.flatnonzero(keep_p)]
    rejected += [(len(trees), g) for g in np.flatnonzero(~keep_p)]
    trees.append(tree)
  chosen = kept[:groups_per_update]
  padding = rejected[:groups_per_update - len(chosen)]
  if len(chosen) + len(padding) < groups_per_update:
    raise ValueError(f"{len(trees)} rollout batches hold {len(kept) + len(rejected)} groups; "
                     f"an update needs {groups_per_update}")
  gathered = _gather(trees, chosen + padding, group_size)
  keep_b = np.repeat(np.arange(groups_per_update) < len(chosen), group_size)
  stats = {"num_batches": len(trees), "groups_seen": len(kept) + len(rejected),
           "groups_kept": len(kept), "filled": len(chosen) == groups_per_update}
  return gathered, keep_b, stats


def _gather(trees: list, picks: list[tuple[int, int]], group_size: int) -> Any:
  """Rows of the picked (batch number, group index) pairs, in pick order."""
  groups_per_batch = [len(jax.tree.leaves(t)[0]) // group_size for t in trees]
  offsets = np.cumsum([0] + groups_per_batch)
  group_idx = np.asarray([offsets[j] + g for (j, g) in picks], np.int64)
  rows_b = _rows(group_idx, group_size)
  return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs])[rows_b], *trees)
