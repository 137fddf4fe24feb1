r"""Offline online-distillation of an EAGLE draft head on a prompt set (SpecVLM protocol).

    python -m concise_jax.draft --model=smollm2-135m-instruct --data=task:word_problems \
        --instruction=step_by_step --out=/tmp/draft --steps=30

Each step samples completions of a batch of prompts with the *speculative* sampler using the
current head (lossless, so the data is the target's own distribution, and the step's mean
accepted length is the acceptance curve), then updates the head on [prompt | completion] from
the target's on-the-fly features and logits. No corpus is stored. Writes DIR/draft_head.npz,
DIR/meta.json and DIR/curve.jsonl (one line per step).
"""
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from concise_jax import data, models
from concise_jax.draft import checkpoint, drafters, training
from concise_jax.models import transformer
from concise_jax.rollout.generate import chat_ids, left_pad
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct", "Target: 'tiny' or models.load spec.")
_DATA = flags.DEFINE_string("data", "task:word_problems", "Prompt source (concise_jax.data spec).")
_INSTRUCTION = flags.DEFINE_string("instruction", "step_by_step", "data.instructions key or text.")
_OUT = flags.DEFINE_string("out", None, "Output directory for the head.")
_STEPS = flags.DEFINE_integer("steps", 30, "Generation + update rounds.")
_BATCH = flags.DEFINE_integer("batch", 8, "Prompts per step.")
_UPDATES = flags.DEFINE_integer("updates_per_batch", 2, "Optimiser steps per generated batch.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 128, "Completion budget.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.7, "Sampling temperature of the data.")
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Draft AdamW learning rate.")
_NOISE = flags.DEFINE_float("noise", 0.0, "Uniform feature-noise half-width.")
_NUM_DRAFT = flags.DEFINE_integer("num_draft", 4, "Draft length k of the sampler.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of prompts, sampling and head init.")
_INIT = flags.DEFINE_string("init", None, "Resume from this draft directory.")
_ACCEPT_EVERY = flags.DEFINE_integer(
    "accept_every", 1, "Sample with the speculative sampler (and log the mean accepted length) "
    "every N steps, with the plain sampler otherwise: the data's distribution is the same "
    "(speculation is lossless) and plain decoding is faster while the head is still weak.")

flags.mark_flags_as_required(["out"])


def _prompts(tokenizer, n, seed):
  exs = data.load_dataset(_DATA.value, split="train", n=n, seed=seed)
  ids = [chat_ids(tokenizer, data.add_instruction(e, _INSTRUCTION.value)) for e in exs]
  return ids, 64 * -(-max(len(x) for x in ids) // 64)


def main(argv):
  del argv
  if _MODEL.value == "tiny":
    cfg, params, tok = models.tiny.load_tiny(0)
  else:
    cfg, params, tok = models.load(_MODEL.value)
  dc = training.DistillConfig(learning_rate=_LR.value, noise=_NOISE.value)
  state = training.init_state(cfg, params, jax.random.key(_SEED.value), dc)
  counts = np.zeros((cfg.vocab_size,), np.int64)
  if _INIT.value:
    state = state.replace(head=checkpoint.load(_INIT.value)["head"])
    state = state.replace(opt_state=training.make_optimizer(dc).init(state.head))
  ids, plen = _prompts(tok, _STEPS.value * _BATCH.value, _SEED.value)
  sp = S.SamplingParams(max_new_tokens=_MAX_NEW.value, temperature=_TEMPERATURE.value,
                        eos_ids=tuple(tok.eos_ids), pad_id=tok.pad_id)
  features = jax.jit(lambda p, t, m: transformer.forward(cfg, p, t, mask_bs=m,
                                                          return_logits=False)[0])
  update = jax.jit(training.distill_from_features, static_argnums=(0, 1), donate_argnums=(2,))
  os.makedirs(_OUT.value, exist_ok=True)
  curve = open(os.path.join(_OUT.value, "curve.jsonl"), "w", encoding="utf-8")
  key = jax.random.key(_SEED.value + 1)
  for step in range(_STEPS.value):
    t0 = time.perf_counter()
    batch = ids[step * _BATCH.value:(step + 1) * _BATCH.value]
    tokens, mask = left_pad(batch, tok.pad_id, min_len=plen)
    speculate = step % max(1, _ACCEPT_EVERY.value) == 0 or step == _STEPS.value - 1
    if speculate:
      out = SP.sample(cfg, params, drafters.EagleDrafter(cfg), {"head": state.head}, tokens,
                      mask, jax.random.fold_in(key, step), sp,
                      SP.SpecParams(num_draft=_NUM_DRAFT.value))
    else:
      out = S.sample(cfg, params, tokens, mask, jax.random.fold_in(key, step), sp)
    jax.block_until_ready(out)
    gen_s = time.perf_counter() - t0
    seq = jnp.concatenate([tokens, out.tokens_bt], 1)
    seq_mask = jnp.concatenate([mask, out.mask_bt], 1)
    np.add.at(counts, np.asarray(out.tokens_bt)[np.asarray(out.mask_bt) > 0], 1)
    feat = features(params, seq, seq_mask)
    for u in range(_UPDATES.value):
      state, metrics = update(cfg, dc, state, params, seq, feat, seq_mask,
                              jax.random.fold_in(key, 10_000 + step * 100 + u))
    row = {"step": step, "mean_accepted": float(out.mean_accepted) if speculate else None,
           "tokens": int(out.length_b.sum()), "gen_s": round(gen_s, 2),
           "total_s": round(time.perf_counter() - t0, 2),
           **{k: round(float(v), 4) for k, v in metrics.items()}}
    print(json.dumps(row), flush=True)
    curve.write(json.dumps(row) + "\n")
    curve.flush()
    if step % 5 == 4 or step == _STEPS.value - 1:   # a killed run keeps its latest head
      meta = {"model": _MODEL.value, "data": _DATA.value, "instruction": _INSTRUCTION.value,
              "steps": step + 1, "batch": _BATCH.value, "distill": dataclasses.asdict(dc)}
      path = checkpoint.save(_OUT.value, state.head, counts, meta)
  curve.close()
  print("wrote", path)


if __name__ == "__main__":
  app.run(main)
