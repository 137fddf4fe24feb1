"""Log-probs and entropies of sampled completion tokens, without [B, T, V] logits in memory.

SmolLM2's vocabulary is 49,152 wide: fp32 logits of a 64 × 192 batch are 2.4 GB, and the
backward pass would keep them (and their softmax) alive. Here the completion is cut into chunks
of `chunk` tokens; each chunk's logits are built, reduced to two numbers per token and dropped,
and `jax.checkpoint` around the chunk makes the backward pass rebuild them instead of storing
them. Peak memory is one chunk's [B, chunk, V] logits, forward and backward.
"""
import functools

import jax
import jax.numpy as jnp

from concise_jax.models import prefix_shared, transformer
from concise_jax.models.config import ModelConfig


def _logp_entropy_from_logits(logits_btv: jax.Array, tokens_bt: jax.Array,
                              temperature: float) -> tuple[jax.Array, jax.Array]:
  """Sampled-token log-prob and entropy of softmax(logits / temperature), fp32."""
  z_btv = logits_btv.astype(jnp.float32) / temperature
  logz_bt = jax.nn.logsumexp(z_btv, axis=-1)
  logp_bt = jnp.take_along_axis(z_btv, tokens_bt[..., None], axis=-1)[..., 0] - logz_bt
  p_btv = jnp.exp(z_btv - logz_bt[..., None])
  entropy_bt = logz_bt - jnp.sum(p_btv * z_btv, axis=-1)
  return logp_bt, entropy_bt


def token_logp_entropy(cfg: ModelConfig, params: dict, hidden_btd: jax.Array,
                       tokens_bt: jax.Array, *, temperature: float = 1.0,
                       chunk: int = 64) -> tuple[jax.Array, jax.Array]:
  """Log-prob and entropy of each token under the model's next-token distribution.

  Args:
    cfg: model config (tied or separate output head).
    params: model params (only the output head is read).
    hidden_btd: [B, T, D] final-normed hidden states; position t predicts `tokens_bt[:, t]`.
    tokens_bt: [B, T] int32 sampled tokens.
    temperature: logits are divided by it, as the sampler did (verl / TRL do the same), so
      ratios against the sampler's log-probs compare like with like.
    chunk: tokens per chunk; peak memory is B · chunk · V floats.

  Returns:
    (logp_bt [B, T] float32, entropy_bt [B, T] float32), differentiable in params and hidden.
  """
  b, t, d = hidden_btd.shape
  chunk = max(1, min(chunk, t))
  n = -(-t // chunk)
  pad = n * chunk - t
  h_nbcd = jnp.pad(hidden_btd, ((0, 0), (0, pad), (0, 0))).reshape(b, n, chunk, d)
  tok_nbc = jnp.pad(tokens_bt, ((0, 0), (0, pad))).reshape(b, n, chunk)

  # prevent_cse=False: inside a scan the rematerialised chunk cannot be merged with the forward.
  @functools.partial(jax.checkpoint, prevent_cse=False)
  def one_chunk(h_bcd, tok_bc):
    logits_bcv = transformer.output_logits(cfg, params, h_bcd)
    return _logp_entropy_from_logits(logits_bcv, tok_bc, temperature)

  logp_nbc, ent_nbc = jax.lax.map(lambda xs: one_chunk(*xs),
                                  (h_nbcd.swapaxes(0, 1), tok_nbc.swapaxes(0, 1)))
  unchunk = lambda x_nbc: x_nbc.swapaxes(0, 1).reshape(b, n * chunk)[:, :t]
  return unchunk(logp_nbc), unchunk(ent_nbc)


def token_logp_entropy_naive(cfg: ModelConfig, params: dict, hidden_btd: jax.Array,
                             tokens_bt: jax.Array, *, temperature: float = 1.0):
  """Reference for `token_logp_entropy` that builds the full [B, T, V] logits (tests only)."""
  logits_btv = transformer.output_logits(cfg, params, hidden_btd)
  return _logp_entropy_from_logits(logits_btv, tokens_bt, temperature)


def completion_hidden(cfg: ModelConfig, params: dict, prompt_tokens_bs: jax.Array,
                      prompt_mask_bs: jax.Array, tokens_bt: jax.Array,
                      mask_bt: jax.Array) -> jax.Array:
  """Hidden states [B, T, D] that predict each completion token, from one causal forward.

  The sequence is [left-padded prompt | completion | right padding]; positions come from the
  joint mask, so completion token t sits at RoPE position len(prompt) + t exactly as in the
  sampler's KV-cache decode. Hidden state at S - 1 + t predicts completion token t.
  """
  s = prompt_tokens_bs.shape[1]
  t = tokens_bt.shape[1]
  seq_bl = jnp.concatenate([prompt_tokens_bs, tokens_bt], axis=1).astype(jnp.int32)
  mask_bl = jnp.concatenate([prompt_mask_bs, mask_bt], axis=1).astype(jnp.int32)
  hidden_bld, _ = transformer.forward(cfg, params, seq_bl, mask_bs=mask_bl, return_logits=False)
  return hidden_bld[:, s - 1:s - 1 + t]


def completion_logp_entropy(cfg: ModelConfig, params: dict, prompt_tokens_bs: jax.Array,
                            prompt_mask_bs: jax.Array, tokens_bt: jax.Array, mask_bt: jax.Array,
                            *, temperature: float = 1.0, chunk: int = 64,
                            prompt_group: int = 1):
  """(logp_bt, entropy_bt) of a completion batch under `params`; see `token_logp_entropy`.

  `prompt_group` > 1 says each run of that many contiguous rows shares one prompt (a GRPO
  group, or a whole-group slice of one): the prompt is then computed once per run
  (`models.prefix_shared`), with the same result.
  """
  if prompt_group > 1:
    hidden_btd = prefix_shared.completion_hidden_shared(
        cfg, params, prompt_tokens_bs[::prompt_group], prompt_mask_bs[::prompt_group],
        tokens_bt, mask_bt, group_size=prompt_group)
  else:
    hidden_btd = completion_hidden(cfg, params, prompt_tokens_bs, prompt_mask_bs, tokens_bt,
                                   mask_bt)
  return token_logp_entropy(cfg, params, hidden_btd, tokens_bt, temperature=temperature,
                            chunk=chunk)
