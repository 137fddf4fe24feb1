"""Jitted autoregressive sampler: prefill once per prompt, then a `lax.while_loop` of decode steps.

Everything is static-shaped: prompts are left-padded, completions live in a [B, T] buffer with
T = max_new_tokens, and finished rows keep running (masked) until every row is done, at which
point the loop exits early.
"""
import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp

from concise_jax import sharding
from concise_jax.models import transformer
from concise_jax.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """Static sampling settings (hashable: a change recompiles, so keep them fixed per run)."""
  max_new_tokens: int = 128
  temperature: float = 0.7          # 0 means greedy.
  top_k: int = 0                    # 0 disables top-k.
  top_p: float = 1.0                # 1.0 disables nucleus sampling.
  eos_ids: tuple[int, ...] = ()     # any of these ends a row (the token is kept in the completion).
  stop_sequences: tuple[tuple[int, ...], ...] = ()  # token-id suffixes that also end a row.
  pad_id: int = 0
  # Also return the entropy of the (tempered, top-k/p) sampling distribution per generated
  # token (PEAR, CEEH): one extra [B, V] reduction per step, so off by default.
  return_entropy: bool = False


@flax.struct.dataclass
class SampleOutput:
  """Completions of B = P * G rows; the G samples of a prompt are adjacent."""
  tokens_bt: jax.Array     # [B, T] int32, pad_id after the end
  logp_bt: jax.Array       # [B, T] f32 log-prob under the sampling distribution (0 on padding)
  mask_bt: jax.Array       # [B, T] int32, 1 on generated tokens including the EOS / stop tokens
  length_b: jax.Array      # [B] int32 completion length in tokens
  finished_b: jax.Array    # [B] bool, ended by EOS or a stop sequence
  truncated_b: jax.Array   # [B] bool, hit its token budget before finishing
  entropy_bt: jax.Array | None = None  # [B, T] f32 sampling-distribution entropy (0 on padding);
                                       #   None unless sp.return_entropy


@flax.struct.dataclass
class _DecodeState:
  step: jax.Array
  logits_bv: jax.Array
  cache: transformer.KVCache
  tokens_bt: jax.Array     # [B, pad + T]: left pad of -1 so stop-sequence windows never underflow
  logp_bt: jax.Array
  length_b: jax.Array
  done_b: jax.Array
  finished_b: jax.Array
  entropy_bt: jax.Array | None = None   # only with sp.return_entropy


def process_logits(logits_bv: jax.Array, sp: SamplingParams) -> jax.Array:
  """Temperature, then top-k, then top-p; removed tokens get -inf."""
  logits_bv = logits_bv.astype(jnp.float32) / sp.temperature
  if sp.top_k > 0:
    top_vals_bk = jax.lax.top_k(logits_bv, sp.top_k)[0]
    logits_bv = jnp.where(logits_bv < top_vals_bk[:, -1:], -jnp.inf, logits_bv)
  if sp.top_p < 1.0:
    # Top-k values are already sorted, so nucleus sampling after top-k avoids a full-vocab sort.
    sorted_bk = top_vals_bk if sp.top_k > 0 else -jnp.sort(-logits_bv, axis=-1)
    probs_bk = jax.nn.softmax(sorted_bk, axis=-1)
    mass_before_bk = jnp.cumsum(probs_bk, axis=-1) - probs_bk
    keep_bk = mass_before_bk < sp.top_p                      # always keeps the top token
    threshold_b1 = jnp.min(jnp.where(keep_bk, sorted_bk, jnp.inf), axis=-1, keepdims=True)
    logits_bv = jnp.where(logits_bv < threshold_b1, -jnp.inf, logits_bv)
  return logits_bv


_CDF_BLOCK = 256


def sample_categorical(key: jax.Array, logp_bv: jax.Array) -> jax.Array:
  """Exact categorical draw by inverse CDF, one uniform per row: [B, V] log-probs -> [B] ids.

  `jax.random.categorical` draws B*V Gumbel variates (threefry is slow on CPU: ~50 ms per step at
  B=32, V=49k) and a flat cumsum over V is slow too; a two-level CDF (block sums, then one block)
  costs ~3 ms.
  """
  b, v = logp_bv.shape
  nblk = -(-v // _CDF_BLOCK)
  p_bv = jnp.pad(jnp.exp(logp_bv), ((0, 0), (0, nblk * _CDF_BLOCK - v)))
  p_bnc = p_bv.reshape(b, nblk, _CDF_BLOCK)
  block_bn = p_bnc.sum(-1)
  block_cdf_bn = jnp.cumsum(block_bn, axis=-1)
  u_b1 = jax.random.uniform(key, (b, 1), minval=1e-12) * block_cdf_bn[:, -1:]
  j_b = jnp.minimum(jnp.sum(block_cdf_bn < u_b1, axis=-1), nblk - 1)
  before_b1 = (jnp.take_along_axis(block_cdf_bn, j_b[:, None], -1)
               - jnp.take_along_axis(block_bn, j_b[:, None], -1))
  inner_bc = jnp.take_along_axis(p_bnc, j_b[:, None, None], 1)[:, 0]
  i_b = jnp.minimum(jnp.sum(jnp.cumsum(inner_bc, -1) + before_b1 < u_b1, -1), _CDF_BLOCK - 1)
  tok_b = j_b * _CDF_BLOCK + i_b
  # Float rounding at a block edge can land on a zero-probability id; fall back to the mode.
  p_tok_b = jnp.take_along_axis(p_bv, tok_b[:, None], -1)[:, 0]
  return jnp.where(p_tok_b > 0, tok_b, jnp.argmax(logp_bv, axis=-1))


def _entropy_b(logp_bv: jax.Array) -> jax.Array:
  """[B] entropy of a row-normalised log-distribution; -inf entries (top-k/p) add 0."""
  p_bv = jnp.exp(logp_bv)
  return -jnp.sum(jnp.where(p_bv > 0, p_bv * logp_bv, 0.0), axis=-1)


def choose_tokens(logits_bv, key, sp: SamplingParams):
  """Returns (token [B], its log-prob under the sampling distribution [B], the distribution's
  entropy [B] or None unless `sp.return_entropy`)."""
  if sp.temperature == 0.0:
    logp_bv = jax.nn.log_softmax(logits_bv.astype(jnp.float32), axis=-1)
    tok_b = jnp.argmax(logits_bv, axis=-1)
  else:
    logp_bv = jax.nn.log_softmax(process_logits(logits_bv, sp), axis=-1)
    tok_b = sample_categorical(key, logp_bv)
  entropy_b = _entropy_b(logp_bv) if sp.return_entropy else None
  return (tok_b.astype(jnp.int32), jnp.take_along_axis(logp_bv, tok_b[:, None], axis=-1)[:, 0],
          entropy_b)


def _stop_hit(tokens_bt, pos, sp: SamplingParams) -> jax.Array:
  """True for rows whose buffer ends (at column `pos`) with one of the stop sequences."""
  hit_b = jnp.zeros(tokens_bt.shape[:1], bool)
  for seq in sp.stop_sequences:
    m = len(seq)
    window_bm = jax.lax.dynamic_slice_in_dim(tokens_bt, pos - m + 1, m, axis=1)
    hit_b |= jnp.all(window_bm == jnp.asarray(seq, jnp.int32), axis=1)
  return hit_b


def stop_pad(sp: SamplingParams) -> int:
  """Columns kept before the completion so a stop sequence can be matched at its first token."""
  return max([len(s) for s in sp.stop_sequences] + [1]) - 1


def _pin_rows(layout: sharding.Layout | None, s: _DecodeState) -> _DecodeState:
  """Keeps every row-indexed array of the decode state sharded over the batch axes (and the
  KV heads over `tensor` where they divide), so each device decodes only its rows."""
  if layout is None:
    return s
  rows = lambda x: layout.constrain(x, ("batch",) + (None,) * (x.ndim - 1))
  kv = lambda x: layout.constrain(x, ("batch", "kv_heads", None, None))
  cache = s.cache.replace(k_bksh=tuple(kv(k) for k in s.cache.k_bksh),
                          v_bksh=tuple(kv(v) for v in s.cache.v_bksh),
                          valid_bs=rows(s.cache.valid_bs), pos_b=rows(s.cache.pos_b))
  return s.replace(logits_bv=rows(s.logits_bv), cache=cache, tokens_bt=rows(s.tokens_bt),
                   logp_bt=rows(s.logp_bt), length_b=rows(s.length_b), done_b=rows(s.done_b),
                   finished_b=rows(s.finished_b),
                   entropy_bt=None if s.entropy_bt is None else rows(s.entropy_bt))


def _decode_loop_step(cfg, params, sp, key, budget_b, steering, layout,
                      s: _DecodeState) -> _DecodeState:
  tok_b, logp_b, entropy_b = choose_tokens(s.logits_bv, jax.random.fold_in(key, s.step), sp)
  live_b = ~s.done_b
  tok_b = jnp.where(live_b, tok_b, sp.pad_id)
  col = s.step + stop_pad(sp)
  tokens_bt = jax.lax.dynamic_update_slice_in_dim(s.tokens_bt, tok_b[:, None], col, axis=1)
  logp_bt = jax.lax.dynamic_update_slice_in_dim(
      s.logp_bt, jnp.where(live_b, logp_b, 0.0)[:, None], s.step, axis=1)
  length_b = s.length_b + live_b
  ended_b = live_b & (jnp.isin(tok_b, jnp.asarray(sp.eos_ids or (-1,), jnp.int32))
                      | _stop_hit(tokens_bt, col, sp))
  entropy_bt = s.entropy_bt
  if entropy_b is not None:
    entropy_bt = jax.lax.dynamic_update_slice_in_dim(
        entropy_bt, jnp.where(live_b, entropy_b, 0.0)[:, None], s.step, axis=1)
  logits_bv, cache = transformer.decode_step(cfg, params, tok_b, s.cache, steering)
  new = _DecodeState(step=s.step + 1, logits_bv=logits_bv, cache=cache, tokens_bt=tokens_bt,
                     logp_bt=logp_bt, length_b=length_b,
                     done_b=s.done_b | ended_b | (length_b >= budget_b),
                     finished_b=s.finished_b | ended_b, entropy_bt=entropy_bt)
  return _pin_rows(layout, new)


@functools.partial(jax.jit, static_argnames=("cfg", "sp", "num_samples", "layout"))
def sample(cfg: ModelConfig, params: dict, prompt_tokens_ps: jax.Array, prompt_mask_ps: jax.Array,
           key: jax.Array, sp: SamplingParams, *, num_samples: int = 1,
           budget_b: jax.Array | None = None,
           steering: transformer.Steering | None = None,
           layout: sharding.Layout | None = None) -> SampleOutput:
  """Samples `num_samples` completions per left-padded prompt.

  Args:
    prompt_tokens_ps, prompt_mask_ps: [P, S] left-padded prompts and their 1/0 mask.
    key: PRNG key; the same key gives the same completions.
    sp: static sampling settings.
    num_samples: G, completions per prompt; the prompt is prefilled once and its cache copied.
    budget_b: optional [P * G] int32 per-row max new tokens (<= sp.max_new_tokens), for
      per-prompt budgets (DLER caps, curricula).
    steering: optional residual-stream steering vector (activation steering).
    layout: the mesh to decode on (static). Rows (P * G) are sharded over its batch axes and
      the KV cache's heads over `tensor` where they divide; parameters stay in whatever layout
      they arrive in (the training layout, when called by the trainer). None: no constraints.
  Returns:
    SampleOutput with B = P * G rows.
  """
  p, s = prompt_tokens_ps.shape
  t = sp.max_new_tokens
  logits_pv, cache = transformer.prefill(cfg, params, prompt_tokens_ps, prompt_mask_ps, s + t,
                                         steering)
  rep = lambda x, axis: jnp.repeat(x, num_samples, axis=axis)
  cache = cache.map_batch(rep)
  b = p * num_samples
  if budget_b is None:
    budget_b = jnp.full((b,), t, jnp.int32)
  budget_b = jnp.minimum(budget_b, t)
  pad = stop_pad(sp)
  state = _DecodeState(
      step=jnp.zeros((), jnp.int32), logits_bv=rep(logits_pv, 0), cache=cache,
      tokens_bt=jnp.full((b, pad + t), -1, jnp.int32), logp_bt=jnp.zeros((b, t), jnp.float32),
      length_b=jnp.zeros((b,), jnp.int32), done_b=budget_b <= 0,
      finished_b=jnp.zeros((b,), bool),
      entropy_bt=jnp.zeros((b, t), jnp.float32) if sp.return_entropy else None)
  decode_params = transformer.unstack_layers(params)  # once, outside the loop
  state = _pin_rows(layout, state)
  step_fn = functools.partial(_decode_loop_step, cfg, decode_params, sp, key, budget_b, steering,
                              layout)
  state = jax.lax.while_loop(lambda st: (st.step < t) & ~jnp.all(st.done_b), step_fn, state)
  mask_bt = (jnp.arange(t)[None, :] < state.length_b[:, None]).astype(jnp.int32)
  tokens_bt = jnp.where(mask_bt > 0, state.tokens_bt[:, pad:], sp.pad_id)
  return SampleOutput(tokens_bt=tokens_bt, logp_bt=state.logp_bt, mask_bt=mask_bt,
                      length_b=state.length_b, finished_b=state.finished_b,
                      truncated_b=~state.finished_b, entropy_bt=state.entropy_bt)
