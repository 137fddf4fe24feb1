"""Remat policy vs step cost: forward + backward of the completion log-prob loss on the
SmolLM2-135M architecture (random weights) under "none", "dots" and "full", with the compiled
program's temporary memory (`memory_analysis()`), measured alternately in one run.

  python experiments/bench_remat.py --rows=16 --prompt_len=48 --new=128

`choose` prints the cheapest-compute policy whose temporary memory fits --budget_gib: the rule
`concise_jax.train.memory_budget.choose_remat` applies to a run's real update.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from concise_jax import models
from concise_jax.train import logprobs

_ROWS = flags.DEFINE_integer("rows", 8, "completion rows in the batch")
_S = flags.DEFINE_integer("prompt_len", 48, "S prompt tokens")
_T = flags.DEFINE_integer("new", 64, "T completion tokens")
_REPEATS = flags.DEFINE_integer("repeats", 2, "timed calls of each (after one warm-up)")
_BUDGET = flags.DEFINE_float("budget_gib", 16.0, "memory budget for the choice")
_MODEL = flags.DEFINE_string("model", "smollm2", "smollm2 (135M shapes) or tiny")


def main(_):
  base = models.SMOLLM2_135M if _MODEL.value == "smollm2" else models.TINY
  params = models.init_params(base, jax.random.key(0))
  rng = np.random.default_rng(0)
  b, s, t = _ROWS.value, _S.value, _T.value
  prompt = jnp.asarray(rng.integers(3, 1000, (b, s)), jnp.int32)
  tokens = jnp.asarray(rng.integers(3, 1000, (b, t)), jnp.int32)
  ones_p, ones_t = jnp.ones_like(prompt), jnp.ones_like(tokens)
  fns, memory = {}, {}
  for policy in ("none", "dots", "full"):
    cfg = base.replace(remat=policy)
    grad = jax.jit(jax.grad(lambda p, cfg=cfg: logprobs.completion_logp_entropy(
        cfg, p, prompt, ones_p, tokens, ones_t, chunk=32)[0].mean()))
    compiled = grad.lower(params).compile()
    memory[policy] = compiled.memory_analysis().temp_size_in_bytes / 2**30
    fns[policy] = compiled
    jax.block_until_ready(compiled(params))
  times = {p: [] for p in fns}
  for _ in range(_REPEATS.value):
    for policy, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(params))
      times[policy].append(time.perf_counter() - start)
  print(f"{_MODEL.value} rows={b} S={s} T={t}")
  full = float(np.median(times["full"]))
  for policy in fns:
    sec = float(np.median(times[policy]))
    print(f"  {policy:5s} temp {memory[policy]:6.2f} GiB  fwd+bwd {sec:6.2f} s  "
          f"({full / sec:.2f}x of full)")
  fitting = [p for p in ("none", "dots", "full") if memory[p] <= _BUDGET.value]
  print(f"  choose (budget {_BUDGET.value} GiB): {fitting[0] if fitting else 'full (none fit)'}")


if __name__ == "__main__":
  app.run(main)
