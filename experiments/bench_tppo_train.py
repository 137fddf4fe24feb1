"""End-to-end T-PPO step time per critic option (`train.tppo_loop.iteration`: one window of
decode + scoring of completed groups + one update), side by side in one run, tiny model.

    python experiments/bench_tppo_train.py [--groups=4] [--group_size=4] [--cap=64]
                                           [--window=16] [--steps=6] [--warmup=2]

Both runs build from configs/tppo.py:model=tiny with the same seed, prompts and sampling keys;
they take turns step by step (this CPU's load drifts, so back-to-back blocks would favour one
side), and the first `--warmup` steps of each (compiles) are excluded. Prints the median step,
decode and update seconds, the slot utilisation and the separate / head ratio.
"""
import argparse
import statistics
import time

import jax

from concise_jax.train import tppo_loop
from configs import tppo as tppo_config


def _config(args, critic: str):
  c = tppo_config.get_config("model=tiny,runlocal")
  c.rollout.prompts_per_step, c.rollout.group_size = args.groups, args.group_size
  c.rollout.max_new_tokens = args.cap
  c.tppo.window, c.tppo.critic = args.window, critic
  c.optim.micro_batch = 0
  return c


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--groups", type=int, default=4)
  ap.add_argument("--group_size", type=int, default=4)
  ap.add_argument("--cap", type=int, default=64)
  ap.add_argument("--window", type=int, default=16)
  ap.add_argument("--steps", type=int, default=6)
  ap.add_argument("--warmup", type=int, default=2)
  args = ap.parse_args()
  modes = ("head", "separate")
  setups = {m: tppo_loop.make_setup(_config(args, m)) for m in modes}
  states = {m: s.state for m, s in setups.items()}
  times = {m: [] for m in modes}
  rows = {m: [] for m in modes}
  for i in range(args.warmup + args.steps):
    for m in modes:
      t0 = time.perf_counter()
      states[m], metrics = tppo_loop.iteration(setups[m], states[m])
      jax.block_until_ready(states[m].params)
      if i >= args.warmup:
        times[m].append(time.perf_counter() - t0)
        rows[m].append(metrics)
  for s in setups.values():
    s.close()
  print(f"tiny model, {args.groups} groups x G={args.group_size} = "
        f"{args.groups * args.group_size} slots, cap {args.cap}, W={args.window}, "
        f"{args.steps} timed steps after {args.warmup} warm-up, devices={jax.device_count()} "
        f"({jax.default_backend()})\n")
  print("| critic | step s (median) | decode s | update s | utilisation | trained rows |")
  print("|---|---:|---:|---:|---:|---:|")
  med = lambda m, k: statistics.median(r.get(k, 0.0) for r in rows[m])
  for m in modes:
    print(f"| {m} | {statistics.median(times[m]):.3f} | {med(m, 'perf/rollout_s'):.3f} | "
          f"{med(m, 'perf/update_s'):.3f} | {med(m, 'tppo/utilisation'):.1%} | "
          f"{med(m, 'tppo/trained_rows'):.0f} |")
  ratio = statistics.median(times["separate"]) / statistics.median(times["head"])
  upd = med("separate", "perf/update_s") / max(med("head", "perf/update_s"), 1e-9)
  print(f"\nseparate / head: step {ratio:.2f}x, update {upd:.2f}x")


if __name__ == "__main__":
  main()
