"""The EAGLE head inside the RL loop: speculative rollouts and online distillation.

SpecVLM's online protocol (arXiv 2509.11815): rollouts are drawn with the lossless speculative
sampler using the current head, so the policy sees exactly the tokens (and target log-probs) the
plain sampler would give; after each policy update the head takes one distillation step on the
rollout just trained on, from the *updated* policy's on-the-fly features and logits, so it keeps
up with the moving target without a stored corpus. The loss is EAGLE's (arXiv 2401.15077;
weights 1.0 / 0.1 are EAGLE's, SpecVLM publishes none).

The draft state (`training.DraftTrainState`) lives in `TrainState.draft`, replicated, and is
checkpointed with it; `loop.py` wires the three functions here.
"""
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import distributed, sharding
from concise_jax.draft import checkpoint as draft_checkpoint
from concise_jax.draft import drafters, training
from concise_jax.models.config import ModelConfig
from concise_jax.rollout import mesh_sampling
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP


@dataclasses.dataclass(frozen=True)
class OnlineSpec:
  """Static settings of `config.rollout.speculative` (hashable: keys compiled functions)."""
  num_draft: int                 # k drafted tokens per target forward
  distill: bool                  # False: the head is fixed (e.g. a standalone `init_from` head)
  dc: training.DistillConfig
  draft_vocab: int               # reduced draft vocabulary size; 0 = the full vocabulary
  init_from: str                 # standalone draft dir (or training workdir) to start from


def from_config(config) -> OnlineSpec | None:
  """The run's speculation settings, or None when `rollout.speculative.enabled` is off."""
  sc = config.rollout.get("speculative")
  if sc is None or not sc.enabled:
    return None
  dc = training.DistillConfig(feature_weight=float(sc.feature_weight),
                              ce_weight=float(sc.ce_weight), learning_rate=float(sc.lr))
  return OnlineSpec(num_draft=int(sc.num_draft), distill=bool(sc.distill), dc=dc,
                    draft_vocab=int(sc.draft_vocab), init_from=sc.init_from)


def init_draft(spec: OnlineSpec, model_cfg: ModelConfig, params: dict,
               key: jax.Array) -> training.DraftTrainState:
  """Step-0 draft state: a fresh head over `params` (the initial policy), or `init_from`'s."""
  state = training.init_state(model_cfg, params, key, spec.dc)
  counts = jnp.zeros((model_cfg.vocab_size,), jnp.int32)
  if spec.init_from:
    loaded = draft_checkpoint.load(spec.init_from)
    head = jax.tree.map(lambda x, ref: jnp.asarray(x, ref.dtype), loaded["head"], state.head)
    state = state.replace(head=head, opt_state=training.make_optimizer(spec.dc).init(head))
    counts = jnp.asarray(draft_checkpoint.load_counts(spec.init_from), jnp.int32)
  return state.replace(token_counts=counts)


def draft_params(spec: OnlineSpec, state: training.DraftTrainState) -> dict:
  """What `EagleDrafter` reads: {"head", "vocab_ids"} (vocab from the counts so far)."""
  vocab_ids = None
  if 0 < spec.draft_vocab < state.token_counts.shape[0]:
    vocab_ids = draft_checkpoint.top_vocab(distributed.fetch(state.token_counts),
                                           spec.draft_vocab)
  return {"head": state.head, "vocab_ids": vocab_ids}


def make_distill(model_cfg: ModelConfig, spec: OnlineSpec, mesh: jax.sharding.Mesh):
  """jit of (draft state, policy params, rollout, key) -> (draft state, metrics): one update.

  The state is donated and comes back replicated (the sharding `TrainState.draft` keeps);
  params and rollout rows may be sharded (the policy's layout, the batch axes).
  """
  rep = sharding.replicated(mesh)

  def distill(state, params, rollout, key):
    prompt_mask = (rollout.prompt_mask_bs > 0).astype(jnp.int32)
    mask = (rollout.mask_bt > 0).astype(jnp.int32)
    counts = state.token_counts.at[rollout.tokens_bt].add(mask)
    if spec.distill:
      state, metrics = training.distill_on_rollout(
          model_cfg, spec.dc, state, params, rollout.prompt_tokens_bs, prompt_mask,
          rollout.tokens_bt, mask, key)
    else:
      metrics = {}
    return state.replace(token_counts=counts), metrics

  return jax.jit(distill, out_shardings=(rep, rep), donate_argnums=0)


def _plain_output(out: SP.SpecOutput) -> S.SampleOutput:
  """The sampler's own output type (what the rollout code indexes row by row)."""
  return S.SampleOutput(**{f.name: getattr(out, f.name) for f in dataclasses.fields(S.SampleOutput)})


def mesh_sample(cfg, params, tokens_ps, mask_ps, key, sp, *, num_samples, layout=None,
                budget_b=None, steering=None, drafter=None, dp=None,
                spec: SP.SpecParams = SP.SpecParams(),
                accepted: list | None = None) -> mesh_sampling.MeshSample:
  """`mesh_sampling.sample` through the speculative sampler (same arguments and result).

  `dp` (draft params) are replicated over the mesh; each batch's mean accepted length (tokens
  per target forward per row) is appended to `accepted`.
  """
  if steering is not None:
    raise ValueError("speculative rollouts do not support activation steering")
  b = tokens_ps.shape[0] * num_samples
  if layout is None:
    out = SP.sample(cfg, params, drafter, dp, tokens_ps, mask_ps, key, sp, spec,
                    num_samples=num_samples, budget_b=budget_b)
    owner = np.zeros((b,), np.int32)
    rows = np.arange(b)
  else:
    prompts_sh = layout.sharding(("batch", None), tokens_ps.shape)
    rows_sh = layout.sharding(("batch",), (b,))
    rep = sharding.replicated(layout.mesh)
    tokens, mask = distributed.put((np.asarray(tokens_ps), np.asarray(mask_ps)), prompts_sh)
    key, dp = distributed.put((key, dp), rep)
    if budget_b is not None:
      budget_b = distributed.put(np.asarray(budget_b, np.int32), rows_sh)
    out = SP.sample(cfg, params, drafter, dp, tokens, mask, key, sp, spec,
                    num_samples=num_samples, budget_b=budget_b, layout=layout)
    owner = np.repeat(distributed.row_owner(rows_sh, b)[::num_samples], num_samples)
    rows = np.flatnonzero(owner == jax.process_index())
  out = distributed.fetch(out)
  if accepted is not None:
    accepted.append(float(out.mean_accepted))
  return mesh_sampling.MeshSample(out=_plain_output(out), rows=rows, owner=owner)


def speculative_sample_fn(spec: OnlineSpec, dp: dict, accepted: list) -> Callable:
  """A drop-in for `mesh_sampling.sample` (what `rollout_step.rollout_batch` takes as
  `sample_fn`) that decodes speculatively with draft params `dp`; each batch's mean accepted
  length is appended to `accepted`."""

  def sample(cfg, params, tokens_ps, mask_ps, key, sp, **kw):
    return mesh_sample(cfg, params, tokens_ps, mask_ps, key, sp, drafter=drafters.EagleDrafter(cfg),
                       dp=dp, spec=SP.SpecParams(num_draft=spec.num_draft), accepted=accepted, **kw)

  return sample
