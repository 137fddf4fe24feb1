"""Steering-vector extraction: mean over pairs of h(concise) − h(verbose) at one layer.

ASC (arXiv 2507.04742): one forward pass (no generation) over problem + answer for each side of
each pair, the residual stream after decoder layer L at the last token, the difference
averaged over pairs and NOT normalised. We read and inject at the same index L (the residual
after block L, what `forward(hidden_layers=(L,))` returns and where `Steering(layer=L)` adds),
where the authors' code reads `hidden_states[L]` but hooks block L, one block later.

Unlike the authors' code (no chat template, problem and answer concatenated), each side is
encoded as the model sees it when generating: the chat-formatted problem, then the answer.
"""
import functools
from collections.abc import Sequence

import jax
import numpy as np

from concise_jax import rollout
from concise_jax.models import transformer
from concise_jax.steering.pairs import Pair
from concise_jax.steering.vectors import SteeringVector

POSITIONS = ("last", "mean")  # last answer token (ASC), or the mean over the answer's tokens
PAD_BUCKET = 64               # padded lengths round up to this: few compiles


def side_ids(tokenizer, problem: str, answer: str, system: str | None = None
             ) -> tuple[list[int], int]:
  """(chat ids of the problem followed by the answer's ids, number of answer tokens)."""
  answer_ids = tokenizer.encode(answer)
  return rollout.chat_ids(tokenizer, problem, system) + answer_ids, len(answer_ids)


@functools.partial(jax.jit, static_argnames=("cfg", "layers"))
def _hidden(cfg, params, tokens_bs, mask_bs, layers):
  """[len(layers), B, S, D] residual stream after each of `layers`."""
  _, aux = transformer.forward(cfg, params, tokens_bs, mask_bs=mask_bs, hidden_layers=layers,
                               return_logits=False)
  return aux["hidden"]


def read_hidden(cfg, params, ids: Sequence[Sequence[int]], answer_lens: Sequence[int],
                layers: tuple[int, ...], *, position: str = "last", pad_id: int = 0,
                batch: int = 8) -> np.ndarray:
  """[len(layers), N, D] hidden state of each sequence after each layer, at `position`.

  Sequences are left-padded, so the last token sits at the last column of every row; "mean"
  averages over each row's last `answer_lens[i]` tokens (the answer).
  """
  if position not in POSITIONS:
    raise KeyError(f"position {position!r}; known: {POSITIONS}")
  out = []
  for start in range(0, len(ids), batch):
    chunk = list(ids[start:start + batch])
    lens = np.asarray(answer_lens[start:start + batch])
    real = len(chunk)
    chunk += [chunk[-1]] * (batch - real)
    tokens, mask = rollout.left_pad(chunk, pad_id, bucket=PAD_BUCKET)
    h_lbsd = np.asarray(_hidden(cfg, params, tokens, mask, tuple(layers)))[:, :real]
    if position == "last":
      out.append(h_lbsd[:, :, -1])
    else:
      s = h_lbsd.shape[2]
      w_bs = (np.arange(s)[None, :] >= s - np.maximum(lens, 1)[:, None]).astype(np.float32)
      out.append(np.einsum("lbsd,bs->lbd", h_lbsd, w_bs) / w_bs.sum(1)[None, :, None])
  return np.concatenate(out, axis=1)


def extract(cfg, params, tokenizer, pairs: Sequence[Pair], layers: Sequence[int], *,
            position: str = "last", system: str | None = None, batch: int = 8,
            rule: str = "last", model: str = "", pairs_source: str = ""
            ) -> dict[int, SteeringVector]:
  """One steering vector per layer: mean over pairs of h(concise) − h(verbose).

  Args:
    cfg, params, tokenizer: the model to steer.
    pairs: concise/verbose answers to the same problems (`pairs.from_own_samples`,
      `pairs.from_jsonl`).
    layers: decoder layer indices (0-based; 63–89% of depth in ASC).
    position: "last" token (ASC) or "mean" over the answer tokens.
    system: system prompt used when the answers were generated (None: template default).
    batch: sequences per forward.
    rule, model, pairs_source: metadata stored with each vector (rule = injection default).

  Returns:
    {layer: SteeringVector}.
  """
  if not pairs:
    raise ValueError("no pairs to extract from")
  layers = tuple(int(l) for l in layers)
  sides = {}
  for name in ("concise", "verbose"):
    encoded = [side_ids(tokenizer, p.problem, getattr(p, name), system) for p in pairs]
    sides[name] = read_hidden(cfg, params, [e[0] for e in encoded], [e[1] for e in encoded],
                              layers, position=position, pad_id=tokenizer.pad_id, batch=batch)
  diff_lnd = sides["concise"] - sides["verbose"]
  return {layer: SteeringVector(vector_d=diff_lnd[i].mean(0).astype(np.float32), layer=layer,
                                rule=rule, model=model, pairs_source=pairs_source,
                                num_pairs=len(pairs), extract_position=position)
          for i, layer in enumerate(layers)}

