"""Resumable windowed decoding for T-PPO's slot scheduler (arXiv:2506.15050).

`sampler.sample` decodes a batch until its longest row ends, so short rows idle. Here the
decode state outlives a call: every row (slot) has its own KV-cache row, write offset, RoPE
position, token buffer, log-probs and stop flags, so

    admit(state, prompts, groups)   prefills only the new prompts into their slots' rows
    advance(state, key, window W)   decodes every live row by up to W tokens, then returns

and a host loop (`train.tppo_rollouts`) scores finished groups and refills their slots between
windows. Rows are ragged, so the cache uses per-row write offsets (`models.verification`,
shared with speculative decoding): a row's completion token t sits at cache column S + t.
Stop rules (EOS ids, stop sequences, per-row budgets) are those of `sampler.sample`; advancing
T/W windows with fixed params reproduces one `sampler.sample` call token for token (greedy).

The state is a pytree of static-shaped arrays: it lives in the train state and a checkpoint
taken between windows resumes exactly.
"""
import functools

import flax.struct
import jax
import jax.numpy as jnp

from concise_jax import sharding
from concise_jax.models import transformer
from concise_jax.models import verification as V
from concise_jax.models.config import ModelConfig
from concise_jax.rollout import sampler as S


@flax.struct.dataclass
class WindowState:
  """B decode rows (slots); a free row is `done` with length 0."""
  cache: transformer.KVCache   # [B, K, S + T, H] per layer, per-row `end` [B]
  logits_bv: jax.Array         # [B, V] next-token logits of each row
  prompt_bs: jax.Array         # [B, S] int32 left-padded prompt of each row
  prompt_mask_bs: jax.Array    # [B, S] int32
  tokens_bt: jax.Array         # [B, pad + T] int32, left pad -1 for stop-sequence windows
  logp_bt: jax.Array           # [B, T] f32 log-prob under the sampling distribution
  length_b: jax.Array          # [B] int32 tokens generated so far
  budget_b: jax.Array          # [B] int32 max new tokens of the row (<= T)
  done_b: jax.Array            # [B] bool finished, out of budget, or free
  finished_b: jax.Array        # [B] bool ended by EOS or a stop sequence
  steps: jax.Array             # [] int32 decode steps run so far (all rows at once)


def init_state(cfg: ModelConfig, num_rows: int, prompt_len: int,
               sp: S.SamplingParams) -> WindowState:
  """Every row free (done, length 0)."""
  t = sp.max_new_tokens
  cache = transformer.init_cache(cfg, num_rows, prompt_len + t)
  cache = cache.replace(end=jnp.full((num_rows,), prompt_len, jnp.int32))
  zeros_b = lambda: jnp.zeros((num_rows,), jnp.int32)   # distinct buffers (donated)
  pad = S.stop_pad(sp)
  return WindowState(
      cache=cache, logits_bv=jnp.zeros((num_rows, cfg.vocab_size), jnp.float32),
      prompt_bs=jnp.zeros((num_rows, prompt_len), jnp.int32),
      prompt_mask_bs=jnp.zeros((num_rows, prompt_len), jnp.int32),
      tokens_bt=jnp.full((num_rows, pad + t), -1, jnp.int32),
      logp_bt=jnp.zeros((num_rows, t), jnp.float32), length_b=zeros_b(), budget_b=zeros_b(),
      done_b=jnp.ones((num_rows,), bool), finished_b=jnp.zeros((num_rows,), bool),
      steps=jnp.zeros((), jnp.int32))


def _pin_rows(layout: sharding.Layout | None, state: WindowState) -> WindowState:
  """Row-indexed leaves over the batch axes, KV heads over `tensor` (as `sampler.sample`)."""
  if layout is None:
    return state
  rows = state.length_b.shape[0]

  def pin(x):
    if x.ndim == 0 or x.shape[0] != rows:
      return x
    if x.ndim == 4:
      return layout.constrain(x, ("batch", "kv_heads", None, None))
    return layout.constrain(x, ("batch",) + (None,) * (x.ndim - 1))

  return jax.tree.map(pin, state)


def _set_rows(old, new, rows_r):
  """old with rows `rows_r` replaced by `new` (out-of-range indices are skipped)."""
  return old.at[rows_r].set(new.astype(old.dtype), mode="drop")


@functools.partial(jax.jit, static_argnames=("cfg", "sp", "group_size", "layout"),
                   donate_argnames=("state",))
def admit(cfg: ModelConfig, params: dict, state: WindowState, prompt_tokens_ps: jax.Array,
          prompt_mask_ps: jax.Array, group_p: jax.Array, sp: S.SamplingParams, *,
          group_size: int, budget_p: jax.Array | None = None,
          layout: sharding.Layout | None = None) -> WindowState:
  """Prefills P new prompts into the G rows of their groups; other rows are untouched.

  Args:
    prompt_tokens_ps, prompt_mask_ps: [P, S] left-padded prompts (S = the state's prompt_len).
    group_p: [P] int32 slot group of each prompt (rows g·G … g·G + G − 1); an index past the
      last group skips the entry, so P can be a fixed bucket size.
    budget_p: optional [P] int32 per-prompt max new tokens (<= sp.max_new_tokens).
  """
  p, s = prompt_tokens_ps.shape
  t = sp.max_new_tokens
  logits_pv, cache = V.prefill_with_features(cfg, params, prompt_tokens_ps, prompt_mask_ps,
                                             s + t)[::2]
  rep = lambda x: jnp.repeat(x, group_size, axis=0)
  rows_r = (group_p[:, None] * group_size + jnp.arange(group_size)[None, :]).reshape(-1)
  rows_r = jnp.where(group_p[:, None].repeat(group_size, 1).reshape(-1) < 0,
                     state.length_b.shape[0], rows_r)
  budget_p = jnp.full((p,), t, jnp.int32) if budget_p is None else jnp.minimum(budget_p, t)
  put = lambda old, new: _set_rows(old, rep(new), rows_r)
  new_cache = state.cache.replace(
      k_bksh=tuple(put(o, n) for o, n in zip(state.cache.k_bksh, cache.k_bksh)),
      v_bksh=tuple(put(o, n) for o, n in zip(state.cache.v_bksh, cache.v_bksh)),
      valid_bs=put(state.cache.valid_bs, cache.valid_bs), end=put(state.cache.end, cache.end),
      pos_b=put(state.cache.pos_b, cache.pos_b))
  budget_r = rep(budget_p)
  new = state.replace(
      cache=new_cache, logits_bv=put(state.logits_bv, logits_pv),
      prompt_bs=put(state.prompt_bs, prompt_tokens_ps),
      prompt_mask_bs=put(state.prompt_mask_bs, prompt_mask_ps),
      tokens_bt=_set_rows(state.tokens_bt, jnp.full_like(state.tokens_bt[:1], -1), rows_r),
      logp_bt=_set_rows(state.logp_bt, jnp.zeros_like(state.logp_bt[:1]), rows_r),
      length_b=_set_rows(state.length_b, jnp.zeros_like(budget_r), rows_r),
      budget_b=_set_rows(state.budget_b, budget_r, rows_r),
      done_b=_set_rows(state.done_b, budget_r <= 0, rows_r),
      finished_b=_set_rows(state.finished_b, jnp.zeros_like(budget_r, bool), rows_r))
  return _pin_rows(layout, new)


def _stop_hit_b(tokens_bt, col_b, sp: S.SamplingParams) -> jax.Array:
  """True for rows whose buffer ends, at their own column `col_b`, with a stop sequence."""
  hit_b = jnp.zeros(tokens_bt.shape[:1], bool)
  for seq in sp.stop_sequences:
    m = len(seq)
    cols_bm = col_b[:, None] + jnp.arange(-m + 1, 1)[None, :]
    window_bm = jnp.take_along_axis(tokens_bt, cols_bm, axis=1)
    hit_b |= jnp.all(window_bm == jnp.asarray(seq, jnp.int32), axis=1)
  return hit_b


def _decode_step(cfg, params, sp, key, layout, s: WindowState) -> WindowState:
  """One token for every live row, written at that row's own column."""
  # pylint: disable-next=protected-access
  tok_b, logp_b, _ = S.choose_tokens(s.logits_bv, jax.random.fold_in(key, s.steps), sp)
  live_b = ~s.done_b
  tok_b = jnp.where(live_b, tok_b, sp.pad_id)
  b, t = s.logp_bt.shape
  pad = s.tokens_bt.shape[1] - t
  rows_b = jnp.arange(b)
  col_b = jnp.where(live_b, s.length_b, t + pad)          # out of range: not written
  tokens_bt = s.tokens_bt.at[rows_b, col_b + pad].set(tok_b, mode="drop")
  logp_bt = s.logp_bt.at[rows_b, col_b].set(logp_b, mode="drop")
  length_b = s.length_b + live_b
  ended_b = live_b & (jnp.isin(tok_b, jnp.asarray(sp.eos_ids or (-1,), jnp.int32))
                      | _stop_hit_b(tokens_bt, jnp.minimum(length_b - 1, t - 1) + pad, sp))
  logits_bwv, _, cache = V.verify(cfg, params, tok_b[:, None], s.cache)
  cache = V.commit(cache, 1, live_b.astype(jnp.int32))
  new = s.replace(cache=cache, logits_bv=logits_bwv[:, 0].astype(s.logits_bv.dtype),
                  tokens_bt=tokens_bt, logp_bt=logp_bt, length_b=length_b,
                  done_b=s.done_b | ended_b | (length_b >= s.budget_b),
                  finished_b=s.finished_b | ended_b, steps=s.steps + 1)
  return _pin_rows(layout, new)


@functools.partial(jax.jit, static_argnames=("cfg", "sp", "window", "layout"),
                   donate_argnames=("state",))
def advance(cfg: ModelConfig, params: dict, state: WindowState, key: jax.Array,
            sp: S.SamplingParams, *, window: int,
            layout: sharding.Layout | None = None) -> WindowState:
  """Decodes every live row by up to `window` tokens (stops early once every row is done).

  `key` seeds this window (fold_in by the global step count): pass a fresh key per window.
  """
  decode_params = transformer.unstack_layers(params)
  step_fn = functools.partial(_decode_step, cfg, decode_params, sp, key, layout)
  stop_at = state.steps + window
  state = _pin_rows(layout, state)
  return jax.lax.while_loop(lambda st: (st.steps < stop_at) & ~jnp.all(st.done_b), step_fn,
                            state)


def outputs(state: WindowState, sp: S.SamplingParams) -> S.SampleOutput:
  """Every row's completion so far, in `sampler.SampleOutput` form (`truncated_b` is only
  meaningful on done rows: an alive row is neither finished nor truncated)."""
  t = sp.max_new_tokens
  pad = state.tokens_bt.shape[1] - t
  mask_bt = (jnp.arange(t)[None, :] < state.length_b[:, None]).astype(jnp.int32)
  return S.SampleOutput(tokens_bt=jnp.where(mask_bt > 0, state.tokens_bt[:, pad:], sp.pad_id),
                        logp_bt=state.logp_bt * mask_bt, mask_bt=mask_bt,
                        length_b=state.length_b, finished_b=state.finished_b,
                        truncated_b=state.done_b & ~state.finished_b)


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def reprefill(cfg: ModelConfig, params: dict, state: WindowState) -> WindowState:
  """Rebuilds every row's cache and next-token logits under `params` from its prompt and
  tokens so far: the exact alternative to keeping a cache that is stale by one update."""
  b, s = state.prompt_bs.shape
  t = state.logp_bt.shape[1]
  pad = state.tokens_bt.shape[1] - t
  gen_mask_bt = (jnp.arange(t)[None, :] < state.length_b[:, None]).astype(jnp.int32)
  tokens_bn = jnp.concatenate([state.prompt_bs, jnp.maximum(state.tokens_bt[:, pad:], 0)], 1)
  mask_bn = jnp.concatenate([state.prompt_mask_bs, gen_mask_bt], axis=1)
  hidden_bnd, aux = transformer.forward(cfg, params, tokens_bn, mask_bs=mask_bn,
                                        return_logits=False, return_kv=True)
  k_lbnkh, v_lbnkh = aux["kv"]
  cache = state.cache.replace(k_bksh=tuple(k.transpose(0, 2, 1, 3) for k in k_lbnkh),
                              v_bksh=tuple(v.transpose(0, 2, 1, 3) for v in v_lbnkh),
                              valid_bs=mask_bn > 0, end=s + state.length_b,
                              pos_b=mask_bn.sum(axis=1).astype(jnp.int32))
  last_b = s - 1 + state.length_b
  hidden_bd = jnp.take_along_axis(hidden_bnd, last_b[:, None, None], axis=1)
  logits_bv = transformer.output_logits(cfg, params, hidden_bd)[:, 0]
  return state.replace(cache=cache, logits_bv=logits_bv.astype(state.logits_bv.dtype))
