"""The update: one jitted pure function `(state, frozen, batch) -> (state, metrics)`.

    mask, advantages                        (once, over the whole batch)
    old log-probs [, reference log-probs]   (once, micro-batched, no gradient)
    for epoch in ppo_epochs:                (lax.scan)
      for minibatch in num_minibatches:     (lax.scan; one optimizer step each)
        token weights of the aggregation    (once per minibatch: GLOBAL normalisers)
        for micro in micro-batches:         (lax.scan; gradient accumulation)
          grads += ∇ Σ weight · per-token loss

Gradient accumulation equals one big batch because every registered aggregation is linear in
the per-token loss: agg(L, m) = Σ W·L with W = ∂agg/∂L, which depends only on the mask. W is
computed once per minibatch (token counts, sequence counts, per-sequence lengths all global)
and each micro-batch contributes Σ W·L over its rows, so no micro-batch normalises by its own
token count. `aggregation_weights` derives W from the registered function itself, so a new
aggregation needs no special case here (a test checks linearity for every registered one).

Length buckets (`optim.length_buckets` = K > 1): a micro-batch padded to the batch's longest
completion computes its padding. With buckets the rows (whole groups when micro-batches hold
whole groups) are sorted by completion length, micro-batches are cut from the sorted order and
each runs at the first of K static lengths (T·k/K) that holds its longest row: a `lax.switch`
over K compiled shapes. Dropped columns carry zero weight and a causal forward never reads
later tokens, so the sum Σ W·L, and so the gradient, is unchanged. The old / reference /
teacher log-prob passes bucket the same way.
"""
import dataclasses
import functools
import math
import types as types_
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from concise_jax import filters, losses, sharding, types
from concise_jax.advantages import ADVANTAGES
from concise_jax.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from concise_jax.models.config import ModelConfig
from concise_jax.train import logprobs, lora, optim
from concise_jax.train.state import TrainState


@flax.struct.dataclass
class UpdateBatch:
  """What the host hands to the update: the rollout, its rewards and the group keep mask."""
  rollout: types.Rollout           # needs prompt_tokens_bs / prompt_mask_bs
  reward_out: types.RewardOutput
  keep_b: jax.Array                # [B] bool; False rows (refill padding) get no loss


@dataclasses.dataclass(frozen=True)
class Policy:
  """How trainable params become model params: identity, or LoRA merge onto a frozen base.

  `frozen` (an input of the update, never donated) holds "base" (LoRA) and/or "ref" (the KL
  reference for full fine-tuning). With LoRA the reference is the base model itself.
  """
  lora_rank: int = 0
  lora_alpha: float = 16.0

  def model_params(self, trainable: Any, frozen: dict) -> dict:
    if self.lora_rank > 0:
      return lora.merge(frozen["base"], trainable, alpha=self.lora_alpha, rank=self.lora_rank)
    return trainable

  def train_params(self, trainable: Any, frozen: dict) -> dict:
    """The params the training forward differentiates: LoRA as a side branch, not merged."""
    if self.lora_rank > 0:
      return lora.side_branch(frozen["base"], trainable, alpha=self.lora_alpha,
                              rank=self.lora_rank)
    return trainable

  def ref_params(self, frozen: dict) -> dict:
    return frozen["base"] if self.lora_rank > 0 else frozen["ref"]


def policy_from_config(config) -> Policy:
  rank = config.model.lora.rank
  # Without adapters alpha is never read: keep it out of the policy (and the update's key).
  return Policy(lora_rank=rank, lora_alpha=float(config.model.lora.alpha) if rank > 0 else 0.0)


def logp_temperature(config) -> float:
  """The temperature the sampler used (greedy counts as 1): log-probs are taken under it."""
  return config.rollout.temperature if config.rollout.temperature > 0 else 1.0


# Learning-rate schedules whose values do not depend on the run's length: the total number of
# optimizer steps stays out of their update's spec, so a longer run reuses the program.
SCHEDULES_WITHOUT_TOTAL = ("constant",)
OPTIM_KEYS = ("lr", "schedule", "warmup_steps", "b1", "b2", "eps", "weight_decay", "clip_norm")


def _options(node) -> tuple[tuple[str, Any], ...]:
  """A component's options as sorted (key, value) pairs (tuples stay tuples: hashable)."""
  return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in dict(node).items()))


@dataclasses.dataclass(frozen=True)
class UpdateSpec:
  """Everything the compiled update reads from the run config, and nothing else.

  Hashable: with the model config, the trainable axes and the mesh it keys the compiled
  program, so a run that differs only in what the update does not read (reward, filter,
  budget, data, eval, checkpointing, seed) reuses it, and any option the update does read
  cannot silently reuse a stale one. `make_update_step` reads only this.
  """
  group_size: int
  advantage: tuple[str, tuple]          # (name, options)
  loss: tuple[str, tuple]
  aggregation: tuple[str, tuple]
  kl: tuple[str, tuple] | None          # None when kl_coef == 0: no reference forward
  kl_coef: float
  entropy_coef: float
  mask_truncated: bool
  ppo_epochs: int
  num_minibatches: int
  micro_batch: int
  logp_chunk: int
  recompute_old_logp: bool              # False for steered rollouts: keep the sampler's
  logp_temperature: float
  policy: Policy
  teacher: bool                         # frozen["teacher"] log-probs (KDRL, DPH-RL)
  optim: tuple[tuple[str, Any], ...]    # OPTIM_KEYS
  total_opt_steps: int                  # 0 for schedules that ignore it
  share_prompt: bool = True             # compute each group's prompt once (exact)
  length_buckets: int = 0               # K > 1: micro-batches cut to T·k/K (0 / 1: off)

  @classmethod
  def from_config(cls, config) -> "UpdateSpec":
    def selected(section):
      node = config[section]
      return node.name, _options(node[node.name])
    kl_coef = float(config.kl.coef)
    steered = config.rollout.get("steering") is not None and bool(config.rollout.steering.path)
    ppo_epochs, num_minibatches = config.train.ppo_epochs, config.optim.num_minibatches
    schedule = config.optim.schedule
    return cls(
        group_size=config.rollout.group_size,
        advantage=selected("advantage"), loss=selected("loss"),
        aggregation=selected("aggregation"),
        kl=selected("kl") if kl_coef != 0.0 else None, kl_coef=kl_coef,
        entropy_coef=float(config.loss.entropy_coef),
        mask_truncated=bool(config.loss.mask_truncated),
        ppo_epochs=ppo_epochs, num_minibatches=num_minibatches,
        micro_batch=config.optim.micro_batch, logp_chunk=config.train.logp_chunk,
        # Steered rollouts (ASC) come from pi_steered, not from the params: recomputing old
        # log-probs (or taking the training forward's own, ratio 1) would treat them as
        # on-policy. Keep the sampler's, so the clipped ratio is pi_theta / pi_steered.
        recompute_old_logp=bool(config.train.recompute_old_logp) and not steered,
        logp_temperature=float(logp_temperature(config)),
        policy=policy_from_config(config), teacher=bool(config.teacher.model),
        optim=tuple((k, config.optim[k]) for k in OPTIM_KEYS),
        total_opt_steps=(0 if schedule in SCHEDULES_WITHOUT_TOTAL
                         else config.train.steps * ppo_epochs * num_minibatches),
        share_prompt=bool(config.train.get("share_prompt", True)),
        length_buckets=int(config.optim.get("length_buckets", 0)))

  @property
  def opt_steps_per_update(self) -> int:
    return self.ppo_epochs * self.num_minibatches

  def optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optimizer, its lr schedule) from the spec's optimizer options."""
    return optim.make_optimizer(types_.SimpleNamespace(**dict(self.optim)), self.total_opt_steps)


def aggregation_weights(aggregate: Callable, mask_bt: jax.Array) -> jax.Array:
  """W [B, T] with aggregate(L, mask) == Σ W·L for any L (aggregations are linear in L)."""
  return jax.grad(lambda loss_bt: aggregate(loss_bt, mask_bt))(jnp.zeros_like(mask_bt))


def _split_unit(rows: int, n: int, group_size: int) -> int:
  """Rows that stay together in `_split`: whole groups when n parts of whole groups exist."""
  return group_size if rows % (n * group_size) == 0 else 1


def _split(tree: Any, n: int, layout: sharding.Layout | None = None,
           group_size: int = 1) -> Any:
  """[B, ...] leaves → [n, B / n, ...]: part i holds groups i, i + n, i + 2n, ...

  Strided, not contiguous: rows are sharded over the batch axes in contiguous blocks, so a
  contiguous part would sit on a few devices and the others would idle (or XLA would gather
  the batch and compute every part everywhere). Each strided part has rows on every device,
  and `layout` pins it there. The stride unit is a whole group of `group_size` rows when the
  parts can hold whole groups (losses such as DPH-RL's read per-group pass rates), else a row.
  """
  def one(x):
    b = x.shape[0]
    if b % n:
      raise ValueError(f"batch of {b} rows does not split into {n} equal parts")
    unit = _split_unit(b, n, group_size)
    x = x.reshape(b // (n * unit), n, unit, *x.shape[1:])
    x = jnp.swapaxes(x, 0, 1).reshape(n, b // n, *x.shape[3:])
    if layout is not None:
      x = layout.constrain(x, (None, "batch") + (None,) * (x.ndim - 2))
    return x
  return jax.tree.map(one, tree)


def _merge(tree: Any, group_size: int = 1) -> Any:
  """Inverse of `_split`: [n, B / n, ...] → [B, ...] in the original row order."""
  def one(x):
    n, rows = x.shape[:2]
    unit = _split_unit(n * rows, n, group_size)
    x = jnp.swapaxes(x.reshape(n, rows // unit, unit, *x.shape[2:]), 0, 1)
    return x.reshape(n * rows, *x.shape[3:])
  return jax.tree.map(one, tree)


def bucket_lengths(t: int, buckets: int) -> tuple[int, ...]:
  """The static completion lengths micro-batches are cut to: ⌈T·k/K⌉ for k = 1..K (K ≤ 1: T)."""
  if buckets <= 1:
    return (t,)
  return tuple(sorted({-(-t * k // buckets) for k in range(1, buckets + 1)}))


def bucket_chunk(length: int, chunk: int) -> int:
  """The log-prob chunk for a `length`-column bucket: a divisor of it when one of at least
  chunk/4 exists, so the head does not compute padded columns (96 with chunk 64: 32)."""
  if length <= chunk or length % chunk == 0:
    return chunk
  divisor = math.gcd(length, chunk)
  return divisor if 4 * divisor >= chunk else chunk


def _row_ends(*masks_bt: jax.Array) -> jax.Array:
  """[B] int32: one past the last column any of the masks uses (0 for an empty row)."""
  used_bt = functools.reduce(jnp.logical_or, [m > 0 for m in masks_bt])
  cols_t = jnp.arange(1, used_bt.shape[1] + 1, dtype=jnp.int32)
  return jnp.max(jnp.where(used_bt, cols_t, 0), axis=1)


def _length_order(ends_b: jax.Array, unit: int) -> jax.Array:
  """[B] row permutation sorting units (`unit` contiguous rows: a group) by their longest row,
  longest first; rows inside a unit keep their order, so groups stay contiguous."""
  ends_u = ends_b.reshape(-1, unit).max(axis=1)
  order_u = jnp.argsort(-ends_u, stable=True)
  return (order_u[:, None] * unit + jnp.arange(unit)[None, :]).reshape(-1)


def _sorted_split(tree: Any, perm_b: jax.Array, n: int,
                  layout: sharding.Layout | None = None) -> Any:
  """[B, ...] leaves → [n, B / n, ...]: part i holds rows perm_b[i·B/n : (i+1)·B/n].

  The contiguous parts of the sorted order each hold similar lengths; `layout` pins every
  part's rows over the batch devices (the permutation itself moves rows between devices).
  """
  def one(x):
    x = jnp.take(x, perm_b, axis=0).reshape(n, x.shape[0] // n, *x.shape[1:])
    if layout is not None:
      x = layout.constrain(x, (None, "batch") + (None,) * (x.ndim - 2))
    return x
  return jax.tree.map(one, tree)


def _sorted_merge(x_n: jax.Array, perm_b: jax.Array) -> jax.Array:
  """Inverse of `_sorted_split` for one leaf: [n, B / n, ...] → [B, ...] in the original order."""
  x = x_n.reshape(-1, *x_n.shape[2:])
  return jnp.zeros_like(x).at[perm_b].set(x)


def _cut_rollout(rollout: types.Rollout, t: int, length: int) -> types.Rollout:
  """The rollout's [B, T] completion arrays (and [B, T] features) cut to `length` columns."""
  cut = lambda x: None if x is None else x[:, :length]
  features = {k: cut(v) if v.ndim >= 2 and v.shape[1] == t else v
              for k, v in rollout.features.items()}
  return rollout.replace(tokens_bt=cut(rollout.tokens_bt), mask_bt=cut(rollout.mask_bt),
                         old_logp_bt=cut(rollout.old_logp_bt),
                         ref_logp_bt=cut(rollout.ref_logp_bt),
                         teacher_logp_bt=cut(rollout.teacher_logp_bt), features=features)


def _cut_micro(micro: tuple, length: int) -> tuple:
  """A micro-batch (rollout, adv, mask, weight, entropy weight) cut to `length` columns."""
  rollout, *arrays_bt = micro
  t = rollout.mask_bt.shape[1]
  if length == t:
    return micro
  return (_cut_rollout(rollout, t, length),
          *(None if x is None else x[:, :length] for x in arrays_bt))


def _tree_select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _combine_micro(metrics_n: dict, tokens_n: jax.Array) -> dict:
  """Micro-batch metrics → minibatch metrics.

  "loss/*" values are already partial sums under the global weights, so they add up; the rest
  are token means over each micro-batch and are re-weighted by its share of tokens.
  """
  share_n = tokens_n / jnp.maximum(tokens_n.sum(), 1.0)
  return {k: v.sum() if k.startswith("loss/") else (v * share_n).sum()
          for k, v in metrics_n.items()}


def _rows_per_chunk(rows: int, wanted: int) -> int:
  return rows if wanted <= 0 or wanted >= rows else wanted


def make_update_step(spec: UpdateSpec, model_cfg: ModelConfig, tx: optax.GradientTransformation,
                     schedule: optax.Schedule | None = None,
                     teacher_cfg: ModelConfig | None = None,
                     layout: sharding.Layout | None = None) -> Callable:
  """Builds the pure update from its spec; wrap it with `jit_update_step`.

  Variants are looked up in the registries and their options bound here, once, outside jit.

  Args:
    spec: what the update reads (`UpdateSpec.from_config(config)`; a config is converted).
    model_cfg: the model's static config (remat decides backward memory).
    tx: the optimizer (`spec.optimizer()`).
    schedule: its learning-rate schedule, only for the "optim/lr" metric.
    teacher_cfg: the teacher's static config when `spec.teacher` (None: the student's); its
      params are `frozen["teacher"]`.
    layout: the training mesh; minibatches and micro-batches are pinned to it so every device
      computes its own rows of each (None: no constraints, one device).

  Returns:
    `update(state: TrainState, frozen: dict, batch: UpdateBatch) -> (TrainState, metrics)`.
  """
  if not isinstance(spec, UpdateSpec):
    spec = UpdateSpec.from_config(spec)
  group_size = spec.group_size
  policy = spec.policy
  bind = lambda registry, name_options, **static: functools.partial(
      registry.get(name_options[0]), **static, **dict(name_options[1]))
  advantage_fn = bind(ADVANTAGES, spec.advantage, group_size=group_size)
  aggregate = bind(AGGREGATIONS, spec.aggregation)
  kl_coef = spec.kl_coef
  loss_kwargs = dict(
      policy_loss=bind(POLICY_LOSSES, spec.loss, group_size=group_size),
      kl_estimator=bind(KL_ESTIMATORS, spec.kl) if spec.kl is not None else None,
      kl_coef=kl_coef, entropy_coef=spec.entropy_coef)
  logp_fn = functools.partial(_sequence_logp, model_cfg, temperature=spec.logp_temperature,
                              chunk=spec.logp_chunk)
  # KDRL / DPH-RL: log-probs of the sampled tokens under a frozen teacher (or pi_0), once.
  teacher_on = spec.teacher
  teacher_logp_fn = functools.partial(_sequence_logp, teacher_cfg or model_cfg,
                                      temperature=spec.logp_temperature, chunk=spec.logp_chunk)
  mask_truncated = spec.mask_truncated
  ppo_epochs, num_minibatches = spec.ppo_epochs, spec.num_minibatches
  micro_rows, recompute_old = spec.micro_batch, spec.recompute_old_logp
  opt_steps_per_update = spec.opt_steps_per_update
  # One optimizer step per rollout is on-policy: the old policy IS the current params, so the
  # old log-probs are the training forward's own values (ratio exactly 1) and the separate
  # no-gradient pass over the batch is skipped — a quarter of the update's FLOPs.
  old_from_current = recompute_old and opt_steps_per_update == 1

  def micro_loss(trainable, frozen, micro, prompt_group=1, chunk=spec.logp_chunk):
    rollout, adv_bt, mask_bt, weight_bt, entropy_w_bt = micro
    logp_bt, entropy_bt = logp_fn(policy.train_params(trainable, frozen), _sequences(rollout),
                                  prompt_group=prompt_group, chunk=chunk)
    sampled_logp_bt = rollout.old_logp_bt
    if old_from_current:
      rollout = rollout.replace(old_logp_bt=jax.lax.stop_gradient(logp_bt))
    weighted = lambda loss_bt, m_bt: jnp.sum(jnp.where(m_bt > 0, loss_bt * weight_bt, 0.0))
    loss, metrics = losses.compute_loss(logp_bt, adv_bt, mask_bt, rollout, aggregate=weighted,
                                        entropy_bt=entropy_bt if entropy_w_bt is None
                                        else entropy_bt * entropy_w_bt, **loss_kwargs)
    metrics["policy/entropy"] = jax.lax.stop_gradient(
        losses.AGGREGATIONS.get("token_mean")(entropy_bt, mask_bt))
    if old_from_current:
      metrics["train/sampler_logp_gap"] = _sampler_gap(
          sampled_logp_bt, jax.lax.stop_gradient(logp_bt), mask_bt)
    return loss, metrics

  grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

  def minibatch_grads(trainable, frozen, rollout, adv_bt, mask_bt, entropy_w_bt):
    weight_bt = aggregation_weights(aggregate, mask_bt)
    rows, t = mask_bt.shape
    n_micro = rows // _rows_per_chunk(rows, micro_rows)
    lengths = bucket_lengths(t, spec.length_buckets)
    tree = (rollout, adv_bt, mask_bt, weight_bt, entropy_w_bt)
    if len(lengths) > 1:
      ends_b = _row_ends(rollout.mask_bt, mask_bt)
      perm_b = _length_order(ends_b, _split_unit(rows, n_micro, group_size))
      micro = _sorted_split(tree, perm_b, n_micro, layout)
      bucket_n = jnp.searchsorted(jnp.asarray(lengths, jnp.int32),
                                  ends_b[perm_b].reshape(n_micro, -1).max(axis=1))
    else:
      micro = _split(tree, n_micro, layout, group_size)
      bucket_n = jnp.zeros((n_micro,), jnp.int32)
    # Whole groups in every minibatch and micro-batch: G contiguous rows share one prompt.
    grouped = (_split_unit(rows * num_minibatches, num_minibatches, group_size) == group_size
               and _split_unit(rows, n_micro, group_size) == group_size)
    prompt_group = (group_size if spec.share_prompt and grouped
                    and _prompts_divide(rows // n_micro // group_size, layout) else 1)

    def grads_at(length, xs):
      return grad_fn(trainable, frozen, _cut_micro(xs, length), prompt_group,
                     bucket_chunk(length, spec.logp_chunk))

    # One compiled shape per bucket length; each micro-batch runs the one its index picks.
    branches = [functools.partial(grads_at, length) for length in lengths]

    def body(grads, xs):
      xs, bucket = xs
      (_, metrics), g = (jax.lax.switch(bucket, branches, xs) if len(branches) > 1
                         else branches[0](xs))
      return jax.tree.map(jnp.add, grads, g), (metrics, xs[2].sum())

    grads, (metrics_n, tokens_n) = jax.lax.scan(
        body, jax.tree.map(jnp.zeros_like, trainable), (micro, bucket_n))
    return grads, _combine_micro(metrics_n, tokens_n)

  def opt_step(frozen, carry, minibatch):
    trainable, opt_state, nonfinite = carry
    grads, metrics = minibatch_grads(trainable, frozen, *minibatch)
    updates, new_opt_state = tx.update(grads, opt_state, trainable)
    grad_norm, update_norm = optax.tree.norm(grads), optax.tree.norm(updates)
    # A non-finite step is not applied, so the state in memory stays the last good one; the
    # host loop sees "train/nonfinite" and halts without checkpointing.
    ok = jnp.isfinite(metrics["loss/total"]) & jnp.isfinite(grad_norm) & jnp.isfinite(update_norm)
    # A minibatch without loss tokens (every group filtered out) carries no signal; stepping
    # anyway would move the params by Adam momentum and weight decay alone.
    apply = ok & (metrics["loss/num_tokens"] > 0)
    trainable = _tree_select(apply, optax.apply_updates(trainable, updates), trainable)
    opt_state = _tree_select(apply, new_opt_state, opt_state)
    metrics.update({"optim/grad_norm": grad_norm, "optim/update_norm": update_norm,
                    "optim/applied": apply.astype(jnp.float32)})
    return (trainable, opt_state, nonfinite + (~ok).astype(jnp.int32)), metrics

  def update(state: TrainState, frozen: dict, batch: UpdateBatch):
    rollout = batch.rollout
    keep_b = batch.keep_b
    if mask_truncated:  # DAPO overlong filtering: a per-sample mask (filters/overlong.py)
      keep_b = filters.overlong.mask_truncated(keep_b, rollout)
    mask_bt = losses.loss_mask(rollout, batch.reward_out, keep_b)
    adv_bt, adv_metrics = advantage_fn(batch.reward_out, rollout, mask_bt)
    # Rewards that shape A per token (CEEH) hand over a capped bonus; None: unchanged.
    adv_bt = types.add_advantage_bonus(adv_bt, batch.reward_out, mask_bt)
    b = mask_bt.shape[0]
    no_grad = functools.partial(_batched_logp, rows=_rows_per_chunk(b, micro_rows),
                                layout=layout, group_size=group_size,
                                share_prompt=spec.share_prompt,
                                length_buckets=spec.length_buckets, chunk=spec.logp_chunk)
    if recompute_old and not old_from_current:
      params = policy.model_params(state.params, frozen)
      rollout = rollout.replace(old_logp_bt=no_grad(logp_fn, params, rollout))
    if kl_coef != 0.0:
      rollout = rollout.replace(ref_logp_bt=no_grad(logp_fn, policy.ref_params(frozen), rollout))
    if teacher_on:
      rollout = rollout.replace(teacher_logp_bt=no_grad(teacher_logp_fn, frozen["teacher"],
                                                        rollout))
    # entropy_weight_bt (CEEH max-entropy mode) weights the entropy bonus per token; None = 1.
    minibatches = _split((rollout, adv_bt, mask_bt, batch.reward_out.entropy_weight_bt),
                         num_minibatches, layout, group_size)

    def epoch(carry, _):
      return jax.lax.scan(functools.partial(opt_step, frozen), carry, minibatches)

    carry = (state.params, state.opt_state, jnp.zeros((), jnp.int32))
    (params, opt_state, nonfinite), metrics = jax.lax.scan(epoch, carry, None, length=ppo_epochs)
    metrics = {k: v.mean() for k, v in metrics.items()}
    metrics.update(adv_metrics)
    metrics["train/nonfinite"] = nonfinite
    if not old_from_current:
      metrics["train/sampler_logp_gap"] = _sampler_gap(
          batch.rollout.old_logp_bt, rollout.old_logp_bt, mask_bt)
    if schedule is not None:
      metrics["optim/lr"] = jnp.asarray(schedule(state.step * opt_steps_per_update), jnp.float32)
    reward_state = state.reward_state.replace(step=state.reward_state.step + 1)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              reward_state=reward_state)
    return new_state, metrics

  return update


def _sequences(rollout: types.Rollout) -> tuple:
  """The four arrays a forward over [prompt | completion] needs."""
  if rollout.prompt_tokens_bs is None or rollout.prompt_mask_bs is None:
    raise ValueError("the update needs rollout.prompt_tokens_bs and prompt_mask_bs")
  return rollout.prompt_tokens_bs, rollout.prompt_mask_bs, rollout.tokens_bt, rollout.mask_bt


def _sequence_logp(model_cfg, params, sequences: tuple, *, temperature, chunk,
                   prompt_group: int = 1):
  return logprobs.completion_logp_entropy(model_cfg, params, *sequences,
                                          temperature=temperature, chunk=chunk,
                                          prompt_group=prompt_group)


def _prompts_divide(num_prompts: int, layout: sharding.Layout | None) -> bool:
  """The per-group prompt rows of a part split evenly over the batch devices. Sharing the
  prompt is exact on one device; with fewer prompt rows than batch devices (unevenly padded
  shards) XLA's backward of the per-group repeat was measured wrong (grad norm 0.65 vs 0.59
  on a 2×2×2 mesh with 2 prompts per micro-batch), so such parts fall back to per-row."""
  if layout is None:
    return True
  devices = 1
  for axis in ("data", "fsdp"):
    devices *= layout.mesh.shape.get(axis, 1)
  return num_prompts % devices == 0


def _batched_logp(logp_fn, params, rollout: types.Rollout, rows: int,
                  layout: sharding.Layout | None = None, group_size: int = 1,
                  share_prompt: bool = False, length_buckets: int = 0,
                  chunk: int = 64) -> jax.Array:
  """[B, T] log-probs under `params`, `rows` sequences at a time, without gradient; with
  `share_prompt`, parts of whole groups compute each group's prompt once; with
  `length_buckets` > 1, parts of similar lengths run at their bucket's length (columns past
  it are 0: they are masked; `chunk` is `logp_fn`'s, adapted to each bucket)."""
  sequences = _sequences(rollout)
  b, t = rollout.mask_bt.shape
  n = b // rows
  unit = _split_unit(b, n, group_size)
  prompt_group = unit if share_prompt and _prompts_divide(rows // unit, layout) else 1
  lengths = bucket_lengths(t, length_buckets)
  if len(lengths) == 1:
    parts = _split(sequences, n, layout, group_size)
    logp_nrt = jax.lax.map(lambda xs: logp_fn(params, xs, prompt_group=prompt_group)[0], parts)
    return jax.lax.stop_gradient(_merge(logp_nrt, group_size))
  ends_b = _row_ends(rollout.mask_bt)
  perm_b = _length_order(ends_b, unit)
  parts = _sorted_split(sequences, perm_b, n, layout)
  bucket_n = jnp.searchsorted(jnp.asarray(lengths, jnp.int32),
                              ends_b[perm_b].reshape(n, -1).max(axis=1))

  def at_length(length, xs):
    prompt_bs, prompt_mask_bs, tokens_bt, mask_bt = xs
    logp_bl = logp_fn(params, (prompt_bs, prompt_mask_bs, tokens_bt[:, :length],
                               mask_bt[:, :length]), prompt_group=prompt_group,
                      chunk=bucket_chunk(length, chunk))[0]
    return jnp.pad(logp_bl, ((0, 0), (0, t - length)))

  branches = [functools.partial(at_length, length) for length in lengths]
  logp_nrt = jax.lax.map(lambda xs: jax.lax.switch(xs[1], branches, xs[0]), (parts, bucket_n))
  return jax.lax.stop_gradient(_sorted_merge(logp_nrt, perm_b))


def _sampler_gap(sampled_logp_bt: jax.Array, used_logp_bt: jax.Array,
                 mask_bt: jax.Array) -> jax.Array:
  """Mean |old log-prob used − sampler's log-prob| over the mask: ~0 unless top-p/top-k
  truncated the sampling distribution or rollout and training numerics disagree."""
  gap_bt = jnp.abs(used_logp_bt - sampled_logp_bt)
  return losses.AGGREGATIONS.get("token_mean")(gap_bt, mask_bt)


def jit_update_step(update: Callable, state_sh: TrainState, frozen_sh: Any,
                    mesh: jax.sharding.Mesh, rules) -> Callable:
  """jit with explicit in/out shardings over `mesh`; the state's buffers are donated."""
  rep = sharding.replicated(mesh)
  return jax.jit(update,
                 in_shardings=(state_sh, frozen_sh, sharding.batch_sharding(mesh, rules)),
                 out_shardings=(state_sh, rep), donate_argnums=0)
