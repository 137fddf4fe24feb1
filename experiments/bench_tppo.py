"""Windowed decode with slot refill (T-PPO, arXiv:2506.15050) vs the synchronous sampler, side by
side in one run, at equal decode rows, on the tiny model.

    python experiments/bench_tppo.py [--prompts=64] [--groups=8] [--group_size=4] [--cap=256]
                                     [--windows=16,32] [--eos=4] [--repeats=2]

Long-tailed lengths: the random tiny model is near-uniform over its vocabulary, so with
`--eos` stop ids every row ends at a geometric random length (mean ≈ V / eos tokens), capped
at `--cap`. Both sides decode the same prompts with temperature 1.

Figures per method: slot utilisation = kept-token row-steps / all row-steps (every decode step
costs all rows), useful tokens/s = kept tokens / wall seconds (compile excluded: each side runs
once before timing). Also times one re-prefill of all rows against one window of W decode
steps: the cost of rebuilding the KV cache after every update (`refresh="reprefill"`).
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import models, rollout
from concise_jax.models import tiny
from concise_jax.rollout import windowed
from concise_jax.train import tppo_rollouts

PROMPT_LEN = 16


def _prompts(n: int) -> list[list[int]]:
  rng = np.random.default_rng(0)
  return [list(rng.integers(4, 60, size=rng.integers(3, PROMPT_LEN + 1))) for _ in range(n)]


def run_sync(cfg, params, sp, prompts, num_groups, group_size, key):
  """Batches of `num_groups` prompts x G rows, each decoded until its longest row ends."""
  useful = row_steps = 0
  for i in range(0, len(prompts), num_groups):
    batch = prompts[i:i + num_groups]
    batch += [[4]] * (num_groups - len(batch))        # a full last batch (same rows)
    tokens, mask = rollout.left_pad(batch, sp.pad_id, bucket=PROMPT_LEN)
    out = rollout.sample(cfg, params, jnp.asarray(tokens), jnp.asarray(mask),
                         jax.random.fold_in(key, i), sp, num_samples=group_size)
    length_b = np.asarray(out.length_b)[:min(num_groups, len(prompts) - i) * group_size]
    useful += int(length_b.sum())
    row_steps += num_groups * group_size * int(np.asarray(out.length_b).max())
  return useful, row_steps


def run_windowed(cfg, params, sp, prompts, num_groups, group_size, window, key):
  """Slot scheduler until the stream is drained."""
  source = lambda i: tppo_rollouts.Prompt(prompts[i]) if i < len(prompts) else None
  sched = tppo_rollouts.SlotScheduler(cfg, sp, num_groups=num_groups, group_size=group_size,
                                      prompt_len=PROMPT_LEN, window=window, source=source,
                                      score=lambda pid, out: np.zeros(group_size))
  buf = sched.init()
  useful, emitted = 0, 0
  while not sched.drained(buf):
    buf, done = sched.step(params, buf, key)
    useful += sum(int(c.out.length_b.sum()) for c in done)
    emitted += len(done)
  assert emitted == len(prompts)
  return useful, num_groups * group_size * int(buf.decode.steps)


def _interleaved(fns: dict, repeats: int) -> dict:
  """{name: (result, median seconds)}; each fn runs once to compile, then the methods take
  turns (this CPU's load drifts, so back-to-back blocks would favour one side)."""
  results = {name: fn() for name, fn in fns.items()}
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      results[name] = fn()
      times[name].append(time.perf_counter() - t0)
  return {name: (results[name], statistics.median(times[name])) for name in fns}


def reprefill_vs_window(cfg, params, sp, num_rows, window, key):
  """(seconds of one re-prefill of every row, seconds of one window of `window` steps), on a
  state whose rows are mid-generation (no EOS, so every row stays live)."""
  sp_live = rollout.SamplingParams(max_new_tokens=sp.max_new_tokens, temperature=1.0)
  tokens, mask = rollout.left_pad(_prompts(num_rows), sp.pad_id, bucket=PROMPT_LEN)

  def fresh():
    st = windowed.init_state(cfg, num_rows, PROMPT_LEN, sp_live)
    st = windowed.admit(cfg, params, st, jnp.asarray(tokens), jnp.asarray(mask),
                        jnp.arange(num_rows, dtype=jnp.int32), sp_live, group_size=1)
    return windowed.advance(cfg, params, st, key, sp_live, window=window)

  def one_window():
    st = fresh()
    jax.block_until_ready(st)
    t0 = time.perf_counter()
    jax.block_until_ready(windowed.advance(cfg, params, st, key, sp_live, window=window))
    return time.perf_counter() - t0

  def one_reprefill():
    st = fresh()
    jax.block_until_ready(st)
    t0 = time.perf_counter()
    jax.block_until_ready(windowed.reprefill(cfg, params, st))
    return time.perf_counter() - t0

  one_window(), one_reprefill()                          # compile
  w = statistics.median(one_window() for _ in range(5))
  r = statistics.median(one_reprefill() for _ in range(5))
  return r, w


def update_step_times(cfg, params, rows: int, cap: int, repeats: int = 3) -> dict:
  """Median seconds of one T-PPO update per critic option, on a batch of `rows` completions of
  `cap` tokens (half of them alive)."""
  import optax  # pylint: disable=import-outside-toplevel
  from concise_jax.train import tppo_update  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  batch = tppo_update.TppoBatch(
      prompt_bs=jnp.asarray(rng.integers(4, 50, (rows, PROMPT_LEN)), jnp.int32),
      prompt_mask_bs=jnp.ones((rows, PROMPT_LEN), jnp.int32),
      tokens_bt=jnp.asarray(rng.integers(4, 50, (rows, cap)), jnp.int32),
      mask_bt=jnp.ones((rows, cap), jnp.float32), old_logp_bt=jnp.full((rows, cap), -4.0),
      rewards_b=jnp.asarray(rng.integers(0, 2, rows), jnp.float32),
      alive_b=jnp.arange(rows) % 2 == 0)
  out = {}
  for mode in tppo_update.CRITIC_MODES:
    opt = optax.adam(1e-5)
    critic = tppo_update.init_critic(cfg, params, mode)
    update = tppo_update.make_update(cfg, opt, opt)
    state = (params, critic, opt.init(params), opt.init(critic))
    jax.block_until_ready(update(*state, batch))            # compile
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(update(*state, batch))
      times.append(time.perf_counter() - t0)
    out[mode] = statistics.median(times)
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--prompts", type=int, default=64)
  ap.add_argument("--groups", type=int, default=8)
  ap.add_argument("--group_size", type=int, default=4)
  ap.add_argument("--cap", type=int, default=256)
  ap.add_argument("--windows", default="16,32")
  ap.add_argument("--eos", type=int, default=2, help="how many token ids end a row")
  ap.add_argument("--repeats", type=int, default=2)
  args = ap.parse_args()

  cfg, key = tiny.tiny_config(), jax.random.key(0)
  params = models.init_params(cfg, key)
  sp = rollout.SamplingParams(max_new_tokens=args.cap, temperature=1.0,
                              eos_ids=tuple(range(1, 1 + args.eos)))
  prompts = _prompts(args.prompts)
  rows = args.groups * args.group_size
  print(f"tiny model (V={cfg.vocab_size}), {rows} decode rows = {args.groups} groups x "
        f"G={args.group_size}, {args.prompts} prompts, cap {args.cap}, {args.eos} EOS ids, "
        f"devices={jax.device_count()} ({jax.default_backend()})")
  fns = {"synchronous sample": lambda: run_sync(cfg, params, sp, prompts, args.groups,
                                                args.group_size, key)}
  for w in map(int, args.windows.split(",")):
    fns[f"windowed W={w} + refill"] = (
        lambda w=w: run_windowed(cfg, params, sp, prompts, args.groups, args.group_size, w, key))
  table = [(name, u, rs, secs) for name, ((u, rs), secs) in _interleaved(fns,
                                                                          args.repeats).items()]
  base = table[0][1] / table[0][3]
  print("\n| method | kept tokens | row-steps | utilisation | ms / decode step | useful tok/s |"
        " vs sync |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for name, u, rs, secs in table:
    print(f"| {name} | {u} | {rs} | {u / rs:.1%} | {secs / (rs / rows) * 1e3:.2f} | "
          f"{u / secs:,.0f} | {u / secs / base:.2f}x |")
  print("\nre-prefill of every row vs one window (rows mid-generation):")
  for w in map(int, args.windows.split(",")):
    r, wt = reprefill_vs_window(cfg, params, sp, rows, w, key)
    print(f"  W={w}: re-prefill {r * 1e3:.1f} ms, window {wt * 1e3:.1f} ms, "
          f"ratio {r / wt:.2f} (re-prefill per window adds {r / wt:.0%} to decode time)")
  times = update_step_times(cfg, params, rows, args.cap)
  print(f"\nT-PPO update step, {rows} rows x {args.cap} tokens: " + ", ".join(
      f"critic={m} {t * 1e3:.0f} ms" for m, t in times.items())
      + f" (separate / head = {times['separate'] / times['head']:.2f}x)")


if __name__ == "__main__":
  main()
