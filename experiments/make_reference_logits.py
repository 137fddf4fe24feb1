"""Writes tests/fixtures/smollm2_reference.npz: transformers' logits for SmolLM2-135M-Instruct.

A one-off, kept so the fixture can be regenerated. It runs transformers' own PyTorch Llama
(which dequantises the same GGUF file and un-permutes Q/K itself) on a few chat prompts, so our
JAX forward can be checked against an implementation we did not write.

Token ids come from our `Tokenizer.from_gguf`, not transformers': transformers' GGUF tokenizer
ignores the file's "smollm" pre-tokenizer (it skips the per-digit split), which changes ids
for whitespace runs before a digit ("and  2" -> [397, 216, 216, 34] instead of [397, 256, 34]).
The model is fed ids, so this only decides which ids the fixture holds.

Needs torch (CPU) and transformers; the test that reads the fixture needs neither.

  python experiments/make_reference_logits.py [--out tests/fixtures/smollm2_reference.npz]
"""
import argparse
import pathlib

import numpy as np
import torch
import transformers

from concise_jax.models import gguf_loading
from concise_jax.models.tokenizer import Tokenizer

# Digits, whitespace runs before digits, tabs, newlines, and both system-prompt paths.
CONVERSATIONS = (
    [{"role": "user", "content": "What is 12 + 7?"}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "Tom has  3 apples and  25 pears.\tHow many fruits?"}],
    [{"role": "user", "content": "List:\n\n  1. 2048\n  2. 3.14159"}],
    [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!   99 ways."}],
)
HEAD_VOCAB = 2048  # logits kept at every position for ids [0, HEAD_VOCAB)


def reference_logits(model, ids_s: list[int]) -> np.ndarray:
  """[S, V] float32 logits of one unpadded sequence."""
  with torch.no_grad():
    out = model(torch.tensor([ids_s]), use_cache=False)
  return out.logits[0].float().numpy()


def main(out: pathlib.Path):
  gguf_path = gguf_loading.locate_smollm2_gguf()
  tokenizer = Tokenizer.from_gguf(gguf_path)
  torch.set_num_threads(2)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32,
      attn_implementation="eager").eval()
  arrays = {"head_vocab": np.int32(HEAD_VOCAB),
            "transformers_version": np.array(transformers.__version__),
            "torch_version": np.array(torch.__version__)}
  for i, messages in enumerate(CONVERSATIONS):
    ids_s = tokenizer.encode_chat(messages, add_generation_prompt=True)
    logits_sv = reference_logits(model, ids_s)
    arrays[f"text_{i}"] = np.array(tokenizer.apply_chat_template(messages))
    arrays[f"tokens_{i}"] = np.asarray(ids_s, np.int32)
    arrays[f"logits_head_{i}"] = logits_sv[:, :HEAD_VOCAB]
    arrays[f"logits_last_{i}"] = logits_sv[-1]
    print(f"prompt {i}: {len(ids_s)} tokens, greedy next: "
          f"{tokenizer.decode([int(logits_sv[-1].argmax())])!r}")
  out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out, **arrays)
  print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=pathlib.Path,
                      default=pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"
                      / "smollm2_reference.npz")
  main(parser.parse_args().out)
