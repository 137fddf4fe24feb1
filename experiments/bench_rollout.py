"""Decode throughput of our jitted sampler vs transformers `generate`, side by side, plus roofline.

    python experiments/bench_rollout.py [--batches=1,8,32,64] [--new_tokens=128] [--repeats=1]

For every batch size it times our sampler (compile apart) and then, when the `peers` extra is
installed, transformers `generate` (PyTorch CPU) on the same dequantised GGUF weights, the same
prompt ids, the same thread count and the same sampling settings (temperature 0.7, no top-k, EOS
ignored so every row generates exactly --new_tokens). It also measures this machine's jitted
fp32 matmul peak and streaming-read bandwidth, and prints our throughput as a fraction of the
roofline: min(B * bandwidth / weight_bytes, peak / (2 * params)) tokens/s.
"""
import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import models, rollout
from concise_jax.models import gguf_loading

PROMPTS = (
    "What is 12 + 7?",
    "Tom has 4 apples and buys 3 more. How many apples does he have?",
    "Explain why the sky is blue in one sentence.",
    "Write the number 345 in words.",
)


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  return 2 * n**3 / _median_seconds(lambda: f(a).block_until_ready(), repeats) / 1e9


def read_bandwidth_gbs(mib: int = 1024, repeats: int = 5) -> float:
  x = jnp.ones((mib * 2**20 // 4,), jnp.float32)
  f = jax.jit(jnp.sum)
  f(x).block_until_ready()
  return x.nbytes / _median_seconds(lambda: f(x).block_until_ready(), repeats) / 1e9


def prompt_batch(tok, batch: int) -> tuple[np.ndarray, np.ndarray]:
  ids = [rollout.chat_ids(tok, PROMPTS[i % len(PROMPTS)]) for i in range(batch)]
  return rollout.left_pad(ids, tok.pad_id)


def bench_ours(cfg, params, tokens, mask, new_tokens: int, repeats: int) -> tuple[float, float]:
  """(compile seconds, median tokens/s) of one jitted sample call generating new_tokens per row."""
  sp = rollout.SamplingParams(max_new_tokens=new_tokens, temperature=0.7, eos_ids=(),
                              pad_id=0)
  tokens, mask = jnp.asarray(tokens), jnp.asarray(mask)
  run = lambda k: rollout.sample(cfg, params, tokens, mask, jax.random.key(k), sp)
  t0 = time.perf_counter()
  out = run(0)
  out.length_b.block_until_ready()
  compile_s = time.perf_counter() - t0
  assert int(out.length_b.min()) == new_tokens
  seconds = _median_seconds(lambda: run(1).length_b.block_until_ready(), repeats)
  return compile_s, tokens.shape[0] * new_tokens / seconds


def load_peer(gguf_path):
  """transformers' own Llama on the same GGUF (dequantised by transformers), or None."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(gguf_path.parent), gguf_file=gguf_path.name, torch_dtype=torch.float32)
  return model.eval()


def bench_peer(model, tokens, mask, new_tokens: int, repeats: int) -> float:
  import torch  # pylint: disable=import-outside-toplevel
  ids, attn = torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))
  def run():
    with torch.inference_mode():
      out = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, temperature=0.7,
                           top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, pad_token_id=2)
    assert out.shape[1] - ids.shape[1] == new_tokens
  run_small = lambda: model.generate(input_ids=ids[:1], attention_mask=attn[:1], do_sample=True,
                                     max_new_tokens=4, pad_token_id=2)
  run_small()  # warm-up (first-call allocations)
  return tokens.shape[0] * new_tokens / _median_seconds(run, repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batches", default="1,8,32,64")
  parser.add_argument("--new_tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--no_peer", action="store_true")
  args = parser.parse_args()
  cfg, params, tok = models.load("smollm2-135m-instruct")
  n_params = sum(x.size for x in jax.tree.leaves(params))
  weight_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
  peak, bandwidth = matmul_peak_gflops(), read_bandwidth_gbs()
  print(f"machine: jitted fp32 matmul peak {peak:.0f} GFLOP/s, streaming read {bandwidth:.1f} GB/s,"
        f" {len(os.sched_getaffinity(0))} threads")
  print(f"model: {n_params:,} params, {weight_bytes / 2**20:.0f} MiB fp32")
  peer = None if args.no_peer else load_peer(gguf_loading.locate_smollm2_gguf())
  if peer is None and not args.no_peer:
    print("(transformers/torch not installed: pip install -e '.[peers]' for the side-by-side)")
  rows = []
  for batch in [int(b) for b in args.batches.split(",")]:
    tokens, mask = prompt_batch(tok, batch)
    compile_s, ours = bench_ours(cfg, params, tokens, mask, args.new_tokens, args.repeats)
    theirs = bench_peer(peer, tokens, mask, args.new_tokens, args.repeats) if peer else None
    roofline = min(batch * bandwidth * 1e9 / weight_bytes, peak * 1e9 / (2 * n_params))
    rows.append((batch, compile_s, ours, theirs, roofline))
    print(f"  batch {batch}: ours {ours:.1f} tok/s (compile {compile_s:.1f}s)"
          + (f", transformers {theirs:.1f} tok/s" if theirs else ""), flush=True)
  print(f"\n| batch | ours tok/s | transformers tok/s | ratio | roofline tok/s | ours / roofline |"
        f" compile s |\n|---|---|---|---|---|---|---|")
  for batch, compile_s, ours, theirs, roofline in rows:
    peer_cols = f"{theirs:.1f} | {ours / theirs:.2f}x" if theirs else "- | -"
    print(f"| {batch} | {ours:.1f} | {peer_cols} | {roofline:.0f} | {ours / roofline:.0%} |"
          f" {compile_s:.1f} |")


if __name__ == "__main__":
  main()
