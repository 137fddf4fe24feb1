"""The loss the train step differentiates: surrogate + aggregation + optional KL / entropy terms.

    loss_fn = make_loss_fn(policy_loss="ppo_clip", aggregation="token_mean", group_size=G, ...)
    mask_bt = loss_mask(batch, reward_out, keep_b)
    adv_bt, adv_metrics = advantage(reward_out, batch, mask_bt)
    (loss, metrics), grads = jax.value_and_grad(
        lambda p: loss_fn(logp_fn(p, batch), adv_bt, mask_bt, batch), has_aux=True)(params)

Every term is aggregated with the same registered aggregation and the same mask (verl
`dp_actor`: pg_loss + kl_coef·agg(kl) − entropy_coef·agg(H)).
"""
import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.losses.aggregation import token_mean
from concise_jax.losses.base import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES


def loss_mask(batch: types.Rollout, reward_out: types.RewardOutput | None = None,
              keep_b: jax.Array | None = None) -> jax.Array:
  """The one [B, T] float32 mask of the update: completion × reward loss mask × group keep.

  Use it for the advantage's batch statistics and for every loss term, numerator and
  denominator alike.
  """
  mask_bt = batch.mask_bt.astype(jnp.float32)
  if reward_out is not None:
    mask_bt = mask_bt * reward_out.loss_mask_bt
  if keep_b is not None:
    mask_bt = mask_bt * jnp.asarray(keep_b)[:, None].astype(jnp.float32)
  return mask_bt


def compute_loss(logp_bt: jax.Array, adv_bt: jax.Array, mask_bt: jax.Array,
                 batch: types.Rollout, *, policy_loss: Callable, aggregate: Callable,
                 kl_estimator: Callable | None = None, kl_coef: float = 0.0,
                 entropy_coef: float = 0.0, entropy_bt: jax.Array | None = None):
  """Scalar loss to minimise and its metrics.

  loss = agg(policy_loss) + kl_coef · agg(kl(logp, ref_logp)) − entropy_coef · agg(H).

  Args:
    logp_bt: [B, T] current log-probs of the sampled tokens (differentiable).
    adv_bt: [B, T] advantages (treated as constants).
    mask_bt: [B, T] float32 loss mask (see `loss_mask`).
    batch: the rollout (old / reference log-probs and per-sample inputs).
    policy_loss: a registered policy loss with its kwargs and `group_size` bound.
    aggregate: a registered aggregation with its kwargs bound.
    kl_estimator: a registered KL estimator with kwargs bound, or None for no KL term.
    kl_coef: β; the KL term is skipped when 0 (a Python value, settled at trace time).
    entropy_coef: weight of the entropy bonus; needs `entropy_bt` when non-zero.
    entropy_bt: [B, T] current-policy token entropy (differentiable), or None.

  Returns:
    (loss [], metrics: loss/total, loss/policy, loss/kl, loss/entropy (when on),
     loss/num_tokens, and policy/<name> = masked token mean of each per-token diagnostic).
  """
  adv_bt = jax.lax.stop_gradient(adv_bt)
  loss_bt, aux = policy_loss(logp_bt, adv_bt, mask_bt, batch)
  policy_term = aggregate(loss_bt, mask_bt)
  total = policy_term
  metrics = {"loss/policy": policy_term, "loss/num_tokens": mask_bt.sum()}
  if kl_estimator is not None and kl_coef != 0.0:
    if batch.ref_logp_bt is None:
      raise ValueError("a KL term needs batch.ref_logp_bt")
    kl_term = aggregate(kl_estimator(logp_bt, batch.ref_logp_bt), mask_bt)
    total = total + kl_coef * kl_term
    metrics["loss/kl"] = kl_term
  if entropy_coef != 0.0:
    if entropy_bt is None:
      raise ValueError("an entropy bonus needs entropy_bt")
    entropy_term = aggregate(entropy_bt, mask_bt)
    total = total - entropy_coef * entropy_term
    metrics["loss/entropy"] = entropy_term
  metrics["loss/total"] = total
  for name, value_bt in aux.items():  # diagnostics: plain token means, whatever the aggregation
    metrics[f"policy/{name}"] = jax.lax.stop_gradient(
        token_mean(value_bt, mask_bt))
  return total, metrics


def make_loss_fn(*, policy_loss: str, aggregation: str, group_size: int,
                 policy_loss_kwargs: Mapping | None = None,
                 aggregation_kwargs: Mapping | None = None,
                 kl_estimator: str | None = None, kl_kwargs: Mapping | None = None,
                 kl_coef: float = 0.0, entropy_coef: float = 0.0) -> Callable:
  """Looks the variants up by name and binds their kwargs once, outside `jit`.

  Returns:
    `loss_fn(logp_bt, adv_bt, mask_bt, batch, entropy_bt=None) -> (loss, metrics)`.
  """
  policy_fn = functools.partial(POLICY_LOSSES.get(policy_loss), group_size=group_size,
                                **(policy_loss_kwargs or {}))
  agg_fn = functools.partial(AGGREGATIONS.get(aggregation), **(aggregation_kwargs or {}))
  kl_fn = (None if kl_estimator is None else
           functools.partial(KL_ESTIMATORS.get(kl_estimator), **(kl_kwargs or {})))
  return functools.partial(compute_loss, policy_loss=policy_fn, aggregate=agg_fn,
                           kl_estimator=kl_fn, kl_coef=kl_coef, entropy_coef=entropy_coef)
