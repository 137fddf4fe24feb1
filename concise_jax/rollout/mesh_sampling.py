"""The one host entry to the sampler that training, evaluation and benchmarks share.

Host prompts become global arrays sharded over the mesh's batch axes, every device decodes only
its rows, and the completions come back to every process as whole host arrays together with
the rows this process must decode to text and verify (see `distributed.owned_rows`).
"""
import dataclasses

import jax
import numpy as np

from concise_jax import distributed, sharding
from concise_jax.rollout import sampler


@dataclasses.dataclass
class MeshSample:
  """A sampled batch on the host: `out` has all B rows on every process; this process handles
  `rows` (its own) on the host; `owner` [B] says which process handles each row (whole groups
  of G samples go to one process)."""
  out: sampler.SampleOutput
  rows: np.ndarray
  owner: np.ndarray


def sample(cfg, params: dict, tokens_ps: np.ndarray, mask_ps: np.ndarray, key: jax.Array,
           sp: sampler.SamplingParams, *, num_samples: int,
           layout: sharding.Layout | None = None, budget_b: np.ndarray | None = None,
           steering=None) -> MeshSample:
  """Samples `num_samples` completions of each left-padded prompt on `layout`'s mesh.

  Args:
    cfg, params: the policy; with a layout, params must already live on its mesh (e.g. the
      trainer's params in their training layout).
    tokens_ps, mask_ps: [P, S] host prompts, the same on every process.
    key: sampling key (same on every process); same key, same tokens on any mesh.
    sp: static sampling settings.
    num_samples: G.
    layout: the mesh to decode on; None = wherever `params` live (one device, one process).
    budget_b: optional [P * G] per-row token budgets.
    steering: optional activation steering (host or replicated values).
  """
  b = tokens_ps.shape[0] * num_samples
  if layout is None:
    out = sampler.sample(cfg, params, tokens_ps, mask_ps, key, sp, num_samples=num_samples,
                         budget_b=budget_b, steering=steering)
    return MeshSample(out=distributed.fetch(out), rows=np.arange(b),
                      owner=np.zeros((b,), np.int32))
  prompts_sh = layout.sharding(("batch", None), tokens_ps.shape)
  rows_sh = layout.sharding(("batch",), (b,))
  rep = sharding.replicated(layout.mesh)
  tokens, mask = distributed.put((np.asarray(tokens_ps), np.asarray(mask_ps)), prompts_sh)
  key = distributed.put(key, rep)
  if budget_b is not None:
    budget_b = distributed.put(np.asarray(budget_b, np.int32), rows_sh)
  if steering is not None:
    steering = distributed.put(steering, rep)
  out = sampler.sample(cfg, params, tokens, mask, key, sp, num_samples=num_samples,
                       budget_b=budget_b, steering=steering, layout=layout)
  # Whole groups per process: host features such as DOT's cut compare a group's samples.
  owner = np.repeat(distributed.row_owner(rows_sh, b)[::num_samples], num_samples)
  return MeshSample(out=distributed.fetch(out),
                    rows=np.flatnonzero(owner == jax.process_index()), owner=owner)
