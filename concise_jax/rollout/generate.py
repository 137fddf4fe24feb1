"""Host-side helpers around the jitted sampler: chat encoding, bucketed left padding, decoding."""
import math

import jax
import numpy as np

from concise_jax.rollout import sampler as sampler_lib

DEFAULT_BUCKET = 32  # prompt lengths round up to a multiple of this, so shapes (and compiles) stay few


def left_pad(ids_list: list[list[int]], pad_id: int, bucket: int = DEFAULT_BUCKET,
             min_len: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads token lists to a bucketed length; returns (tokens [P, S] int32, mask [P, S] int32)."""
  longest = max([len(ids) for ids in ids_list] + [min_len, 1])
  s = bucket * math.ceil(longest / bucket)
  tokens = np.full((len(ids_list), s), pad_id, np.int32)
  mask = np.zeros((len(ids_list), s), np.int32)
  for i, ids in enumerate(ids_list):
    if ids:
      tokens[i, s - len(ids):] = ids
      mask[i, s - len(ids):] = 1
  return tokens, mask


def chat_ids(tokenizer, prompt: str, system: str | None = None) -> list[int]:
  """Token ids of a one-turn chat ending with the assistant header."""
  messages = ([{"role": "system", "content": system}] if system is not None else [])
  return tokenizer.encode_chat(messages + [{"role": "user", "content": prompt}])


def stop_sequences(tokenizer, stop_strings: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
  """Token-id forms of stop strings.

  Matching is on ids, so a stop string tokenised differently in context is missed; callers that
  need exact string stops also cut the decoded text (see `completions_to_text`).
  """
  return tuple(tuple(tokenizer.encode(s)) for s in stop_strings if s)


def completions_to_text(tokenizer, out: sampler_lib.SampleOutput,
                        stop_strings: tuple[str, ...] = ()) -> list[str]:
  """Decodes each row's completion (mask applied) and cuts it at the first stop string."""
  tokens, lengths = jax.device_get((out.tokens_bt, out.length_b))
  texts = []
  for row, n in zip(tokens, lengths):
    text = tokenizer.decode(row[:n], skip_special_tokens=True)
    for stop in stop_strings:
      if stop and stop in text:
        text = text[:text.index(stop)]
    texts.append(text)
  return texts


def generate(cfg, params, tokenizer, prompts: list[str], sp: sampler_lib.SamplingParams,
             key: jax.Array, *, num_samples: int = 1, system: str | None = None,
             stop_strings: tuple[str, ...] = ()) -> tuple[list[str], sampler_lib.SampleOutput]:
  """Chat-formats `prompts`, samples `num_samples` each, and returns (texts, raw output)."""
  tokens, mask = left_pad([chat_ids(tokenizer, p, system) for p in prompts], tokenizer.pad_id)
  out = sampler_lib.sample(cfg, params, tokens, mask, key, sp, num_samples=num_samples)
  return completions_to_text(tokenizer, out, stop_strings), out
