"""Distillation of the EAGLE head from the target's on-the-fly features and logits.

Loss (EAGLE, arXiv 2401.15077; online protocol of SpecVLM, arXiv 2509.11815):

  L = feature_weight · SmoothL1(f̂_{t+1}, f_{t+1}) + ce_weight · CE(softmax(LM(f_{t+1})), LM(f̂_{t+1}))

Smooth-L1 (β = 1) is averaged over the hidden dim, then over valid positions; the CE is to the
target's full next-token distribution. Defaults 1.0 / 0.1 are EAGLE's (SpecVLM publishes none).
The CE is computed in chunks of positions under `jax.checkpoint`, so neither pass ever holds
[B, T, V] logits. No corpus is stored: each step runs the target on the sequences at hand (the
rollouts of an RL update, or freshly generated completions offline).
"""
import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp
import optax

from concise_jax.draft import head as head_lib
from concise_jax.models import transformer
from concise_jax.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class DistillConfig:
  """Static knobs of the draft loss and optimiser."""
  feature_weight: float = 1.0   # v_w, Smooth-L1 on features (EAGLE)
  ce_weight: float = 0.1        # p_w, CE to the target distribution (EAGLE)
  noise: float = 0.0            # uniform feature noise half-width (EAGLE: 0.1 at 512 tokens)
  learning_rate: float = 3e-4
  weight_decay: float = 0.0
  grad_clip: float = 0.5        # EAGLE
  chunk: int = 64               # positions per CE chunk


@flax.struct.dataclass
class DraftTrainState:
  """Draft head params and optimiser state (lives in the RL train state / its checkpoint)."""
  step: jax.Array
  head: dict
  opt_state: optax.OptState
  # [V] int32 counts of the target's sampled tokens (online runs): the reduced draft vocabulary
  # (EAGLE-3, arXiv 2503.01840) is their top `draft_vocab` ids; None offline.
  token_counts: jax.Array | None = None


def make_optimizer(dc: DistillConfig) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(dc.grad_clip),
                     optax.adamw(dc.learning_rate, b1=0.9, b2=0.95, weight_decay=dc.weight_decay))


def init_state(cfg: ModelConfig, target_params: dict, key: jax.Array,
               dc: DistillConfig) -> DraftTrainState:
  head = head_lib.init_head(cfg, target_params, key)
  return DraftTrainState(step=jnp.zeros((), jnp.int32), head=head,
                         opt_state=make_optimizer(dc).init(head))


def _smooth_l1(x):
  ax = jnp.abs(x)
  return jnp.where(ax < 1.0, 0.5 * x * x, ax - 0.5)


def _chunked_ce(cfg, target_params, pred_btd, feat_btd, w_bt, chunk):
  """Σ_t w_t · CE(softmax(LM f_t), LM f̂_t) and Σ_t w_t · [argmax agrees], in position chunks."""
  b, t, d = pred_btd.shape
  c = max(1, min(chunk, t))
  n = -(-t // c)
  padt = lambda x: jnp.pad(x, ((0, 0), (0, n * c - t)) + ((0, 0),) * (x.ndim - 2))
  to_chunks = lambda x: padt(x).reshape((b, n, c) + x.shape[2:]).swapaxes(0, 1)

  @functools.partial(jax.checkpoint, prevent_cse=False)
  def one(xs):
    pred_bcd, feat_bcd, w_bc = xs
    tgt_logp = jax.nn.log_softmax(transformer.output_logits(cfg, target_params, feat_bcd))
    drf_logp = jax.nn.log_softmax(transformer.output_logits(cfg, target_params, pred_bcd))
    ce_bc = -jnp.sum(jnp.exp(tgt_logp) * drf_logp, axis=-1)
    agree_bc = jnp.argmax(tgt_logp, -1) == jnp.argmax(drf_logp, -1)
    return jnp.sum(ce_bc * w_bc), jnp.sum(agree_bc * w_bc)

  ce_n, agree_n = jax.lax.map(one, (to_chunks(pred_btd), to_chunks(feat_btd), to_chunks(w_bt)))
  return ce_n.sum(), agree_n.sum()


def eagle_loss(cfg: ModelConfig, head: dict, target_params: dict, tokens_bt: jax.Array,
               feat_btd: jax.Array, mask_bt: jax.Array, dc: DistillConfig,
               key: jax.Array | None = None,
               loss_mask_bt: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """EAGLE loss over whole sequences.

  Args:
    tokens_bt: [B, T] int32 token ids (prompt + completion, left-padded); mask_bt [B, T] 1/0.
    feat_btd: [B, T, D] the target's final-normed features of the same sequences.
    key: noise key (used when dc.noise > 0).
    loss_mask_bt: optional [B, T] 1/0: only positions t with loss_mask[t + 1] = 1 count (the
      head still attends to every valid position). Rollouts use the completion: the head
      drafts only there, and prompt text would otherwise outweigh it.
  Returns:
    (scalar loss, metrics: feature_loss, ce, top1 = share of positions where the draft's argmax
    equals the target's, the greedy acceptance rate of a one-token draft).
  """
  feat_btd = jax.lax.stop_gradient(feat_btd.astype(jnp.float32))
  next_bt = jnp.pad(tokens_bt[:, 1:], ((0, 0), (0, 1)))
  w_bt = (mask_bt[:, :-1] * mask_bt[:, 1:]).astype(jnp.float32)
  if loss_mask_bt is not None:
    w_bt = w_bt * loss_mask_bt[:, 1:].astype(jnp.float32)
  w_bt = jnp.pad(w_bt, ((0, 0), (0, 1)))               # pair (t, t+1) is real
  noisy_btd = feat_btd
  if dc.noise > 0 and key is not None:
    noisy_btd = feat_btd + jax.random.uniform(key, feat_btd.shape, minval=-dc.noise,
                                              maxval=dc.noise)
  pred_btd = head_lib.head_forward(cfg, head, target_params, next_bt, noisy_btd, mask_bt)
  tgt_btd = jnp.pad(feat_btd[:, 1:], ((0, 0), (0, 1), (0, 0)))
  n = jnp.maximum(w_bt.sum(), 1.0)
  feature_loss = jnp.sum(jnp.mean(_smooth_l1(pred_btd - tgt_btd), axis=-1) * w_bt) / n
  ce_sum, agree_sum = _chunked_ce(cfg, target_params, pred_btd, tgt_btd, w_bt, dc.chunk)
  loss = dc.feature_weight * feature_loss + dc.ce_weight * ce_sum / n
  return loss, {"feature_loss": feature_loss, "ce": ce_sum / n, "top1": agree_sum / n}


def distill_from_features(cfg: ModelConfig, dc: DistillConfig, state: DraftTrainState,
                          target_params: dict, tokens_bt, feat_btd, mask_bt, key=None,
                          loss_mask_bt=None):
  """One optimiser step given the target's features (the RL update already has them)."""
  (loss, metrics), grads = jax.value_and_grad(eagle_loss, argnums=1, has_aux=True)(
      cfg, state.head, target_params, tokens_bt, feat_btd, mask_bt, dc, key, loss_mask_bt)
  updates, opt_state = make_optimizer(dc).update(grads, state.opt_state, state.head)
  head = optax.apply_updates(state.head, updates)
  return (state.replace(step=state.step + 1, head=head, opt_state=opt_state),
          {"draft/loss": loss, **{f"draft/{k}": v for k, v in metrics.items()}})


@functools.partial(jax.jit, static_argnames=("cfg", "dc"), donate_argnums=(2,))
def distill_step(cfg: ModelConfig, dc: DistillConfig, state: DraftTrainState, target_params: dict,
                 tokens_bt: jax.Array, mask_bt: jax.Array, key: jax.Array,
                 loss_mask_bt: jax.Array | None = None):
  """Online distillation hook: runs the target on the sequences, then one draft update.

  Call it once per RL update on the rollouts being trained on (prompt + completion tokens, the
  joint mask), with the current policy params: the head tracks the moving policy.
  Returns (new state, metrics dict of scalars).
  """
  feat_btd, _ = transformer.forward(cfg, target_params, tokens_bt, mask_bs=mask_bt,
                                    return_logits=False)
  return distill_from_features(cfg, dc, state, target_params, tokens_bt, feat_btd, mask_bt,
                               jax.random.fold_in(key, state.step), loss_mask_bt)


def distill_on_rollout(cfg: ModelConfig, dc: DistillConfig, state: DraftTrainState,
                       policy_params: dict, prompt_tokens_bs: jax.Array, prompt_mask_bs: jax.Array,
                       tokens_bt: jax.Array, mask_bt: jax.Array, key: jax.Array):
  """The RL-loop hook (SpecVLM online distillation): one draft update on a rollout batch.

  `draft.online` calls it after each policy update with the updated policy's params; the loss
  counts the completion positions only (where the head drafts), the prompt being context.
  Args: prompts [B, S] left-padded with their mask; completions [B, T] with their mask.
  """
  tokens = jnp.concatenate([prompt_tokens_bs, tokens_bt], axis=1)
  mask = jnp.concatenate([prompt_mask_bs, mask_bt], axis=1)
  completion = jnp.concatenate([jnp.zeros_like(prompt_mask_bs), mask_bt], axis=1)
  return distill_step(cfg, dc, state, policy_params, tokens, mask, key, completion)
