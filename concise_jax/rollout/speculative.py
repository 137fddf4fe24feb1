"""Lossless speculative sampling: a draft proposes k tokens, the target verifies them in one forward.

Each round (Leviathan et al., arXiv 2211.17192; Chen et al., arXiv 2302.01318):

  draft   d_1..d_k ~ q_1..q_k (greedy: argmax), storing the draft's actual q
  verify  the target scores [pending, d_1..d_k] in one forward → p_1..p_{k+1}
  accept  d_i while u_i < p_i(d_i) / q_i(d_i) (greedy: d_i == argmax p_i); at the first
          rejection emit y ~ normalise((p_i − q_i)+), or y ~ p_{k+1} if all k were accepted.

p and q are the *sampling* distributions (temperature, top-k, top-p applied to both), so every
emitted token is distributed exactly as the plain sampler's. Per-token log-probs are the
target's log p of the emitted token, as `sampler.sample` returns them. Stop rules (EOS, stop
sequences, per-row budgets) are checked at every emitted position: a row that ends inside an
accepted run keeps only the tokens up to its end.

Rows are ragged after acceptance: the target and draft caches use per-row write offsets
(`models.verification`), and each row writes its emitted tokens at its own column.
Static shapes: one round emits at most W = k + 1 tokens per row; the loop runs at most T rounds.
"""
import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp

from concise_jax import sharding
from concise_jax.models import transformer
from concise_jax.models import verification as V
from concise_jax.models.config import ModelConfig
from concise_jax.rollout import sampler as S


@dataclasses.dataclass(frozen=True)
class SpecParams:
  """Static speculation settings."""
  num_draft: int = 4          # k drafted tokens per round (W = k + 1 verified)


@flax.struct.dataclass
class SpecState:
  round: jax.Array         # [] int32
  cache: transformer.KVCache
  pending_b: jax.Array     # [B] last emitted token, not yet in the target cache
  dstate: object           # the drafter's state
  dlogits_bv: jax.Array    # [B, Vd] draft logits for the next round's first draft token
  tokens_bt: jax.Array     # [B, pad + T + W] (left pad -1 for stop windows)
  logp_bt: jax.Array       # [B, T + W]
  length_b: jax.Array
  done_b: jax.Array
  finished_b: jax.Array
  accepted_sum: jax.Array  # [] f32: Σ tokens emitted per live row-round (accepted drafts + 1)
  live_rounds: jax.Array   # [] f32: Σ live row-rounds


@flax.struct.dataclass
class SpecOutput(S.SampleOutput):
  """SampleOutput plus the mean number of tokens emitted per target forward per row."""
  mean_accepted: jax.Array | None = None   # [] f32 (accepted drafts + 1, averaged over rounds)


def _target_logp(logits_nv: jax.Array, sp: S.SamplingParams) -> jax.Array:
  """Log-probs of the sampling distribution (raw softmax when greedy, like the plain sampler)."""
  if sp.temperature == 0.0:
    return jax.nn.log_softmax(logits_nv.astype(jnp.float32), axis=-1)
  return jax.nn.log_softmax(S.process_logits(logits_nv, sp), axis=-1)


def _draft_tokens(drafter, dp, tp, state: SpecState, key, sp, k):
  """k draft tokens (target ids [B, k]), their draft ids and the draft log-q rows [B, k, Vd]."""
  dstate, dlogits_bv = state.dstate, state.dlogits_bv
  ids, logq = [], []
  for i in range(k):
    if i:
      dstate, dlogits_bv = drafter.step(dp, tp, dstate, drafter.to_target(dp, ids[-1]))
    logq_bv = _target_logp(dlogits_bv, sp)
    if sp.temperature == 0.0:
      id_b = jnp.argmax(dlogits_bv, axis=-1).astype(jnp.int32)
    else:
      id_b = S.sample_categorical(jax.random.fold_in(key, i), logq_bv).astype(jnp.int32)
    ids.append(id_b)
    logq.append(logq_bv)
  ids_bk = jnp.stack(ids, axis=1)
  return drafter.to_target(dp, ids_bk), ids_bk, jnp.stack(logq, axis=1), dstate


def _accept(key, logp_bwv, draft_bk, draft_ids_bk, logq_bkv, drafter, dp, sp):
  """Returns (m_b accepted drafts, y_b the target's own token at position m)."""
  b, w, _ = logp_bwv.shape
  k = w - 1
  p_draft_bk = jnp.take_along_axis(logp_bwv[:, :k], draft_bk[..., None], axis=-1)[..., 0]
  if sp.temperature == 0.0:
    ok_bk = draft_bk == jnp.argmax(logp_bwv[:, :k], axis=-1)
  else:
    q_draft_bk = jnp.take_along_axis(logq_bkv, draft_ids_bk[..., None], axis=-1)[..., 0]
    u_bk = jax.random.uniform(jax.random.fold_in(key, 0), (b, k))
    ok_bk = jnp.log(u_bk) < p_draft_bk - q_draft_bk        # u < p / q, in log space
  m_b = jnp.sum(jnp.cumprod(ok_bk.astype(jnp.int32), axis=1), axis=1)
  logp_m_bv = jnp.take_along_axis(logp_bwv, m_b[:, None, None], axis=1)[:, 0]
  if sp.temperature == 0.0:
    return m_b, jnp.argmax(logp_m_bv, axis=-1).astype(jnp.int32)
  # Residual (p − q)+ at the rejected position; q lives on the draft vocab, scatter it to V.
  logq_m_bv = jnp.take_along_axis(logq_bkv, jnp.minimum(m_b, k - 1)[:, None, None], axis=1)[:, 0]
  q_full_bv = jnp.zeros_like(logp_m_bv)
  vocab = jnp.broadcast_to(drafter.to_target(dp, jnp.arange(logq_m_bv.shape[-1])), logq_m_bv.shape)
  q_full_bv = q_full_bv.at[jnp.arange(b)[:, None], vocab].add(jnp.exp(logq_m_bv))
  resid_bv = jnp.maximum(jnp.exp(logp_m_bv) - q_full_bv, 0.0)
  # A rejection implies p(d) < q(d), hence positive residual mass; guard float round-off anyway.
  resid_ok_b = jnp.sum(resid_bv, axis=-1) > 1e-12
  use_resid_b = (m_b < k) & resid_ok_b
  dist_bv = jnp.where(use_resid_b[:, None], jnp.log(resid_bv), logp_m_bv)
  y_b = S.sample_categorical(jax.random.fold_in(key, 1), dist_bv)
  return m_b, y_b.astype(jnp.int32)


def _stop_hits_bw(tokens_bt, col_b, w, sp):
  """[B, W] True where the buffer ends, at column col_b + j, with a stop sequence."""
  hit_bw = jnp.zeros((tokens_bt.shape[0], w), bool)
  for seq in sp.stop_sequences:
    m = len(seq)
    cols_bwm = col_b[:, None, None] + jnp.arange(w)[None, :, None] + jnp.arange(-m + 1, 1)
    win_bwm = jnp.take_along_axis(tokens_bt[:, None, :], cols_bwm, axis=2)
    hit_bw |= jnp.all(win_bwm == jnp.asarray(seq, jnp.int32), axis=-1)
  return hit_bw


def _write_cols(buf_bt, new_bw, col_b):
  return jax.vmap(lambda r, u, c: jax.lax.dynamic_update_slice(r, u, (c,)))(buf_bt, new_bw, col_b)


def _emit(state: SpecState, emitted_bw, logp_emit_bw, n_new_b, budget_b, sp):
  """Writes a round's tokens, applies stop rules per position; returns (state fields, n_emit_b)."""
  w = emitted_bw.shape[1]
  pad = S.stop_pad(sp)
  live_b = ~state.done_b
  col_b = pad + state.length_b
  tokens_bt = _write_cols(state.tokens_bt, emitted_bw, col_b)
  logp_bt = _write_cols(state.logp_bt, logp_emit_bw, state.length_b)
  j_w = jnp.arange(w)
  ended_bw = (jnp.isin(emitted_bw, jnp.asarray(sp.eos_ids or (-1,), jnp.int32))
              | _stop_hits_bw(tokens_bt, col_b, w, sp))
  real_bw = j_w[None] < n_new_b[:, None]
  ended_bw &= real_bw
  stop_bw = ended_bw | (real_bw & (state.length_b[:, None] + j_w[None] + 1 >= budget_b[:, None]))
  any_stop_b = jnp.any(stop_bw, axis=1)
  first_b = jnp.argmax(stop_bw, axis=1)
  n_emit_b = jnp.where(live_b, jnp.where(any_stop_b, first_b + 1, n_new_b), 0)
  ended_b = live_b & any_stop_b & jnp.take_along_axis(ended_bw, first_b[:, None], 1)[:, 0]
  length_b = state.length_b + n_emit_b
  fields = dict(tokens_bt=tokens_bt, logp_bt=logp_bt, length_b=length_b,
                done_b=state.done_b | (live_b & any_stop_b) | (length_b >= budget_b),
                finished_b=state.finished_b | ended_b)
  return fields, n_emit_b


def _round(tcfg, drafter, tp, dp, sp, k, key, budget_b, state: SpecState) -> SpecState:
  key = jax.random.fold_in(key, state.round)
  draft_bk, draft_ids_bk, logq_bkv, dstate = _draft_tokens(
      drafter, dp, tp, state, jax.random.fold_in(key, 0), sp, k)
  block_bw = jnp.concatenate([state.pending_b[:, None], draft_bk], axis=1)
  logits_bwv, feat_bwd, cache = V.verify(tcfg, tp, block_bw, state.cache)
  b, w, v = logits_bwv.shape
  logp_bwv = _target_logp(logits_bwv.reshape(b * w, v), sp).reshape(b, w, v)
  m_b, y_b = _accept(jax.random.fold_in(key, 1), logp_bwv, draft_bk, draft_ids_bk, logq_bkv,
                     drafter, dp, sp)
  j_w = jnp.arange(w)
  next_bw = jnp.concatenate([draft_bk, jnp.full((b, 1), sp.pad_id, jnp.int32)], axis=1)
  next_bw = jnp.where(j_w[None] == m_b[:, None], y_b[:, None], next_bw)
  logp_emit_bw = jnp.take_along_axis(logp_bwv, next_bw[..., None], axis=-1)[..., 0]
  live_b = ~state.done_b
  fields, _ = _emit(state, next_bw, jnp.where(j_w[None] <= m_b[:, None], logp_emit_bw, 0.0),
                    m_b + 1, budget_b, sp)
  n_keep_b = jnp.where(live_b, m_b + 1, 0)
  cache = V.commit(cache, w, n_keep_b)
  dstate, dlogits_bv = drafter.commit(dp, tp, dstate, next_bw, feat_bwd, n_keep_b)
  return state.replace(
      round=state.round + 1, cache=cache, pending_b=y_b, dstate=dstate, dlogits_bv=dlogits_bv,
      accepted_sum=state.accepted_sum + jnp.sum(jnp.where(live_b, m_b + 1, 0)),
      live_rounds=state.live_rounds + jnp.sum(live_b), **fields)


def init_state(tcfg: ModelConfig, drafter, params: dict, dp: dict, prompt_tokens_ps,
               prompt_mask_ps, key, sp: S.SamplingParams, spec: SpecParams, num_samples: int,
               budget_b):
  """Prefill of target and draft plus the first token (sampled from the prefill logits)."""
  p, s = prompt_tokens_ps.shape
  t, w = sp.max_new_tokens, spec.num_draft + 1
  max_len = s + t + 2 * w
  logits_pv, feat_psd, cache = V.prefill_with_features(tcfg, params, prompt_tokens_ps,
                                                       prompt_mask_ps, max_len)
  rep = lambda x, axis=0: jnp.repeat(x, num_samples, axis=axis)
  cache = cache.map_batch(rep).replace(end=rep(cache.end))
  b = p * num_samples
  logp_bv = _target_logp(rep(logits_pv), sp)
  if sp.temperature == 0.0:
    first_b = jnp.argmax(logp_bv, axis=-1).astype(jnp.int32)
  else:
    first_b = S.sample_categorical(jax.random.fold_in(key, 1 << 30), logp_bv).astype(jnp.int32)
  dstate, dlogits_bv = drafter.init(dp, params, rep(prompt_tokens_ps), rep(prompt_mask_ps),
                                    rep(feat_psd), first_b, max_len)
  pad = S.stop_pad(sp)
  state = SpecState(
      round=jnp.zeros((), jnp.int32), cache=cache, pending_b=first_b, dstate=dstate,
      dlogits_bv=dlogits_bv, tokens_bt=jnp.full((b, pad + t + w), -1, jnp.int32),
      logp_bt=jnp.zeros((b, t + w), jnp.float32), length_b=jnp.zeros((b,), jnp.int32),
      done_b=budget_b <= 0, finished_b=jnp.zeros((b,), bool),
      accepted_sum=jnp.zeros((), jnp.float32), live_rounds=jnp.zeros((), jnp.float32))
  first_logp_b = jnp.take_along_axis(logp_bv, first_b[:, None], -1)
  fields, _ = _emit(state, first_b[:, None], first_logp_b, jnp.ones((b,), jnp.int32), budget_b, sp)
  return state.replace(**fields)


def _pin_rows(layout: sharding.Layout | None, state: SpecState, rows: int) -> SpecState:
  """Every row-indexed leaf of the state (target and draft caches included) sharded over the
  batch axes, KV buffers' heads over `tensor` where they divide: each device verifies and
  drafts only its rows, as in `sampler.sample`."""
  if layout is None:
    return state

  def pin(x):
    if x.ndim == 0 or x.shape[0] != rows:
      return x
    if x.ndim == 4:     # [B, K, S, H] key/value buffers
      return layout.constrain(x, ("batch", "kv_heads", None, None))
    return layout.constrain(x, ("batch",) + (None,) * (x.ndim - 1))

  return jax.tree.map(pin, state)


@functools.partial(jax.jit, static_argnames=("tcfg", "drafter", "sp", "spec", "num_samples",
                                             "layout"))
def sample(tcfg: ModelConfig, params: dict, drafter, draft_params: dict,
           prompt_tokens_ps: jax.Array, prompt_mask_ps: jax.Array, key: jax.Array,
           sp: S.SamplingParams, spec: SpecParams = SpecParams(), *, num_samples: int = 1,
           budget_b: jax.Array | None = None,
           layout: sharding.Layout | None = None) -> SpecOutput:
  """Speculative counterpart of `sampler.sample` (same arguments plus the drafter).

  Args:
    tcfg, params: the target model.
    drafter: `draft.drafters.EagleDrafter(tcfg)` or `ModelDrafter(draft_cfg)` (static).
    draft_params: the drafter's params ({"head", "vocab_ids"} or {"params"}).
    prompt_tokens_ps, prompt_mask_ps, key, sp, num_samples, budget_b: as in `sampler.sample`.
    spec: static speculation settings (draft length).
    layout: the mesh to decode on (static); rows are split over its batch axes. None: no
      constraints (one device).
  Returns:
    SpecOutput: the plain SampleOutput fields (same distribution, per-token target log-probs
    under the sampling distribution) plus `mean_accepted`. Entropies are not computed.
  """
  b = prompt_tokens_ps.shape[0] * num_samples
  t = sp.max_new_tokens
  budget_b = jnp.full((b,), t, jnp.int32) if budget_b is None else jnp.minimum(budget_b, t)
  state = init_state(tcfg, drafter, params, draft_params, prompt_tokens_ps, prompt_mask_ps, key,
                     sp, spec, num_samples, budget_b)
  state = _pin_rows(layout, state, b)
  # Per-layer weights are sliced once, outside the loop (see `transformer.unstack_layers`).
  loop_params = transformer.unstack_layers(params)
  step_fn = functools.partial(_round, tcfg, drafter, loop_params,
                              drafter.prepare(draft_params, loop_params), sp, spec.num_draft, key,
                              budget_b)
  pinned_step = lambda st: _pin_rows(layout, step_fn(st), b)
  state = jax.lax.while_loop(lambda st: (st.round < t) & ~jnp.all(st.done_b), pinned_step, state)
  return finalize(state, sp)


def finalize(state: SpecState, sp: S.SamplingParams) -> SpecOutput:
  """Trims the buffers to T and masks past each row's length."""
  t = sp.max_new_tokens
  pad = S.stop_pad(sp)
  mask_bt = (jnp.arange(t)[None, :] < state.length_b[:, None]).astype(jnp.int32)
  tokens_bt = jnp.where(mask_bt > 0, state.tokens_bt[:, pad:pad + t], sp.pad_id)
  return SpecOutput(tokens_bt=tokens_bt, logp_bt=state.logp_bt[:, :t] * mask_bt, mask_bt=mask_bt,
                    length_b=state.length_b, finished_b=state.finished_b,
                    truncated_b=~state.finished_b,
                    mean_accepted=state.accepted_sum / jnp.maximum(state.live_rounds, 1.0))
