"""The T-PPO update (arXiv:2506.15050): PPO's clipped surrogate on Extended-GAE advantages plus
a clipped value loss, with the critic either a head on the policy trunk or a separate model.

    critic_mode="head"      a linear value head on the policy's final-normed hidden states,
                            stop-gradient into the trunk: one shared forward, the value loss
                            trains only the head (`models.value_head`)
    critic_mode="separate"  a full decoder copy initialised from the policy plus the head,
                            trained through its trunk: a second forward and backward per update

Per update: the critic's values before the update go, with the batch, to the selected critic
estimator (`advantages.base.CRITIC_ADVANTAGES`: "egae" — advantages with λ_policy, value
targets with λ_critic = 1, VC-PPO arXiv:2503.01491, alive rows bootstrapping from V(s_n) — or
"gae", ordinary GAE), which returns advantages and value targets; then one gradient step on
policy loss + value_coef · value loss, each side with its own optimizer. The clipped value
loss is verl's default (labelled, not a T-PPO claim).
"""
import functools

import flax.struct
import jax
import jax.numpy as jnp
import optax

from concise_jax import types
from concise_jax.advantages import gae
from concise_jax.advantages.base import CRITIC_ADVANTAGES
from concise_jax.losses import policy
from concise_jax.models import transformer, value_head
from concise_jax.models.config import ModelConfig
from concise_jax.train import logprobs

CRITIC_MODES = ("head", "separate")


@flax.struct.dataclass
class TppoBatch:
  """Completions from the slot scheduler: finished rows and alive (unfinished) ones."""
  prompt_bs: jax.Array       # [B, S] int32 left-padded prompts
  prompt_mask_bs: jax.Array  # [B, S] int32
  tokens_bt: jax.Array       # [B, T] int32 completion tokens so far
  mask_bt: jax.Array         # [B, T] float32 1 on generated tokens
  old_logp_bt: jax.Array     # [B, T] float32 log-probs of the sampling policy
  rewards_b: jax.Array       # [B] float32 outcome reward (ignored on alive rows)
  alive_b: jax.Array         # [B] bool unfinished: cut at a window boundary


def init_critic(cfg: ModelConfig, params: dict, critic_mode: str) -> dict:
  """{"head"} on the policy trunk, or {"head", "trunk"} with the trunk a copy of the policy."""
  if critic_mode not in CRITIC_MODES:
    raise ValueError(f"critic_mode={critic_mode!r}; choose from {CRITIC_MODES}")
  critic = {"head": value_head.init_value_head(cfg)}
  if critic_mode == "separate":
    critic["trunk"] = jax.tree.map(jnp.copy, params)
  return critic


def _hidden_bld(cfg, params, batch: TppoBatch):
  seq_bl = jnp.concatenate([batch.prompt_bs, batch.tokens_bt], axis=1).astype(jnp.int32)
  mask_bl = jnp.concatenate([batch.prompt_mask_bs, batch.mask_bt.astype(jnp.int32)], axis=1)
  return transformer.forward(cfg, params, seq_bl, mask_bs=mask_bl, return_logits=False)[0]


def _head(hidden_bld, head):
  return hidden_bld.astype(jnp.float32) @ head["w"] + head["b"]


def logp_and_values(cfg: ModelConfig, params: dict, critic: dict, batch: TppoBatch, *,
                    temperature: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """(policy log-probs [B, T], values V(s_0 … s_T) [B, T + 1]); one shared forward with a
  head critic, two forwards with a separate one."""
  s, t = batch.prompt_bs.shape[1], batch.tokens_bt.shape[1]
  hidden_bld = _hidden_bld(cfg, params, batch)
  logp_bt, _ = logprobs.token_logp_entropy(cfg, params, hidden_bld[:, s - 1:s - 1 + t],
                                           batch.tokens_bt, temperature=temperature)
  if "trunk" in critic:
    values_bl = _head(_hidden_bld(cfg, critic["trunk"], batch), critic["head"])
  else:
    values_bl = _head(jax.lax.stop_gradient(hidden_bld), critic["head"])
  return logp_bt, value_head.completion_values_bt1(values_bl, s)


def as_rollout(batch: TppoBatch, values_bt1: jax.Array) -> types.Rollout:
  """The batch in the estimators' `types.Rollout` shape, the critic's values and the alive flags
  as the features a critic estimator declares (`advantages.base.CRITIC_NEEDS`). Fields no
  critic estimator reads (correct, format, truncated, prompt index) are zeros."""
  b = batch.mask_bt.shape[0]
  zeros_b = jnp.zeros((b,), bool)
  return types.Rollout(
      tokens_bt=batch.tokens_bt, mask_bt=batch.mask_bt.astype(jnp.float32),
      length_b=batch.mask_bt.sum(axis=1).astype(jnp.int32), correct_b=zeros_b,
      format_ok_b=zeros_b, truncated_b=zeros_b, prompt_index_b=jnp.zeros((b,), jnp.int32),
      old_logp_bt=batch.old_logp_bt, prompt_tokens_bs=batch.prompt_bs,
      prompt_mask_bs=batch.prompt_mask_bs.astype(jnp.float32),
      features={"values": values_bt1, "alive": batch.alive_b})


def critic_advantage(name: str = "egae", options: dict | None = None):
  """`(reward_out, rollout, mask_bt) -> (adv_bt, targets_bt, metrics)`: the registered critic
  estimator `name` with its options bound; an unknown name lists the valid ones."""
  component = CRITIC_ADVANTAGES.component(name)
  return functools.partial(component.fn, group_size=1, **(options or {}))


def make_update(cfg: ModelConfig, policy_opt: optax.GradientTransformation,
                critic_opt: optax.GradientTransformation, *, advantage: str = "egae",
                advantage_options: dict | None = None, eps: float = 0.2,
                value_clip: float = 0.5, value_coef: float = 1.0, temperature: float = 1.0):
  """A jitted `update(params, critic, policy_opt_state, critic_opt_state, batch)` returning
  the four new values and a metrics dict. `advantage` / `advantage_options`: the critic
  estimator (`tppo.advantage.name` and its options)."""
  advantage_fn = critic_advantage(advantage, advantage_options)

  def loss_fn(params, critic, batch, adv_bt, targets_bt, old_values_bt1):
    logp_bt, values_bt1 = logp_and_values(cfg, params, critic, batch, temperature=temperature)
    mask_bt = batch.mask_bt.astype(jnp.float32)
    n = jnp.maximum(mask_bt.sum(), 1.0)
    pg_bt, aux = policy.ppo_clip(logp_bt, adv_bt, mask_bt, batch, group_size=1, eps_low=eps,
                                 eps_high=eps)
    v_bt = gae.clipped_value_loss_bt(values_bt1[:, :-1], old_values_bt1[:, :-1], targets_bt,
                                     clip=value_clip)
    pg_loss, v_loss = (pg_bt * mask_bt).sum() / n, (v_bt * mask_bt).sum() / n
    return pg_loss + value_coef * v_loss, {
        "loss/policy": pg_loss, "loss/value": v_loss,
        "loss/clip_frac": (aux["clip_frac"] * mask_bt).sum() / n}

  @jax.jit
  def update(params, critic, policy_state, critic_state, batch: TppoBatch):
    _, old_values_bt1 = logp_and_values(cfg, params, critic, batch, temperature=temperature)
    old_values_bt1 = jax.lax.stop_gradient(old_values_bt1)
    rollout = as_rollout(batch, old_values_bt1)
    adv_bt, targets_bt, metrics = advantage_fn(
        types.make_reward_output(rollout, batch.rewards_b), rollout, rollout.mask_bt)
    grads, loss_metrics = jax.grad(loss_fn, argnums=(0, 1), has_aux=True)(
        params, critic, batch, adv_bt, targets_bt, old_values_bt1)
    p_up, policy_state = policy_opt.update(grads[0], policy_state, params)
    c_up, critic_state = critic_opt.update(grads[1], critic_state, critic)
    return (optax.apply_updates(params, p_up), optax.apply_updates(critic, c_up), policy_state,
            critic_state, {**metrics, **loss_metrics})

  return update
