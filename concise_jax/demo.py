"""Answers a few built-in questions with the embedded SmolLM2-135M-Instruct (greedy decoding).

    python -m concise_jax.demo [--model=smollm2-135m-instruct|tiny|/path] [--max_new_tokens=64]
"""
import time

import jax
from absl import app, flags

from concise_jax import models, rollout

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct", "model name, .gguf file or HF dir")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 64, "tokens generated per answer")
_SYSTEM = flags.DEFINE_string("system", None, "system prompt (default: the model's own)")

QUESTIONS = (
    "What is 12 + 7?",
    "What is 3 + 5? Answer briefly.",
    "What is the capital of France?",
    "Tom has 4 apples and buys 3 more. How many apples does he have?",
)


def main(argv):
  del argv
  t0 = time.time()
  if _MODEL.value == "tiny":
    cfg, params, tok = models.tiny.load_tiny()
  else:
    cfg, params, tok = models.load(_MODEL.value)
  print(f"loaded {_MODEL.value}: {cfg.n_layers} layers, d={cfg.d_model}, "
        f"{sum(x.size for x in jax.tree.leaves(params)):,} parameters in {time.time() - t0:.1f}s")
  sp = rollout.SamplingParams(max_new_tokens=_MAX_NEW.value, temperature=0.0,
                              eos_ids=tok.eos_ids, pad_id=tok.pad_id)
  t0 = time.time()
  texts, out = rollout.generate(cfg, params, tok, list(QUESTIONS), sp, jax.random.key(0),
                                system=_SYSTEM.value)
  seconds = time.time() - t0
  for question, text, n in zip(QUESTIONS, texts, jax.device_get(out.length_b)):
    print(f"\nQ: {question}\nA ({n} tokens): {text.strip()}")
  print(f"\n{int(out.length_b.sum())} tokens in {seconds:.1f}s (compile included)")


if __name__ == "__main__":
  app.run(main)
