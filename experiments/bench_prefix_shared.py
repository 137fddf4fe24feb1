"""Prompt once per group vs the joint forward: forward + backward of the completion log-prob
loss on the SmolLM2-135M architecture (random weights: the timing depends only on shapes).

  python experiments/bench_prefix_shared.py --prompts=2 --group=8 --prompt_len=64 --new=128

Prints the two times, measured alternately in one run, and their ratio, plus the share of
tokens the shared forward skips: G−1 of G prompt passes, i.e. (G−1)·S / (G·(S+T)).
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from concise_jax import models
from concise_jax.train import logprobs

_P = flags.DEFINE_integer("prompts", 2, "P prompt groups")
_G = flags.DEFINE_integer("group", 8, "G completions per prompt")
_S = flags.DEFINE_integer("prompt_len", 64, "S prompt tokens")
_T = flags.DEFINE_integer("new", 128, "T completion tokens")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls of each (after one warm-up)")
_MODEL = flags.DEFINE_string("model", "smollm2", "smollm2 (135M shapes) or tiny")


def main(_):
  cfg = models.SMOLLM2_135M if _MODEL.value == "smollm2" else models.TINY
  cfg = cfg.replace(remat=True)
  params = models.init_params(cfg, jax.random.key(0))
  p, g, s, t = _P.value, _G.value, _S.value, _T.value
  rng = np.random.default_rng(0)
  prompt_bs = jnp.asarray(np.repeat(rng.integers(3, 1000, (p, s)), g, 0), jnp.int32)
  prompt_mask = jnp.ones_like(prompt_bs)
  tokens_bt = jnp.asarray(rng.integers(3, 1000, (p * g, t)), jnp.int32)
  mask_bt = jnp.ones_like(tokens_bt)

  def loss(params, group):
    logp, _ = logprobs.completion_logp_entropy(cfg, params, prompt_bs, prompt_mask, tokens_bt,
                                               mask_bt, chunk=32, prompt_group=group)
    return logp.mean()

  fns = {name: jax.jit(jax.grad(lambda w, k=k: loss(w, k))) for name, k in
         (("joint", 1), ("shared", g))}
  for fn in fns.values():
    jax.block_until_ready(fn(params))
  times = {name: [] for name in fns}
  for _ in range(_REPEATS.value):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(params))
      times[name].append(time.perf_counter() - start)
  joint, shared = (float(np.median(times[n])) for n in ("joint", "shared"))
  skipped = (g - 1) * s / (g * (s + t))
  print(f"{_MODEL.value} P={p} G={g} S={s} T={t}: forward+backward joint {joint:.2f} s, "
        f"prompt once per group {shared:.2f} s, speed-up {joint / shared:.2f}x "
        f"(tokens skipped {skipped:.0%})")


if __name__ == "__main__":
  app.run(main)
