r"""Windowed decode with slot refill (T-PPO, arXiv:2506.15050) vs the synchronous sampler, side by
side in one run, at equal decode rows, on the tiny model or (with --task) SmolLM2.

    python experiments/bench_tppo.py [--prompts=64] [--groups=8] [--group_size=4] [--cap=256]
                                     [--windows=16,32] [--eos=4] [--repeats=2]
    python experiments/bench_tppo.py --model=smollm2 --task=word_problems \
        --instruction=step_by_step --prompts=16 --windows=32 --repeats=1 --update_rows=8

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
from concise_jax.rollout import mesh_sampling, windowed
from concise_jax.train import rollout_step, tppo_loop, tppo_rollouts, trainer

PROMPT_LEN = 16


def _prompts(n: int) -> list[list[int]]:
  rng = np.random.default_rng(0)
  return [list(rng.integers(4, 60, size=rng.integers(3, PROMPT_LEN + 1))) for _ in range(n)]


def run_sync(cfg, params, sp, prompts, num_groups, group_size, key, prompt_len=PROMPT_LEN,
             filler=(4,)):
  """Batches of `num_groups` prompts x G rows, each decoded until its longest row ends.

  (kept tokens, row-steps, kept lengths); `filler` fills a short last batch (same rows)."""
  useful = row_steps = 0
  lengths = []
  for i in range(0, len(prompts), num_groups):
    batch = prompts[i:i + num_groups]
    batch += [list(filler)] * (num_groups - len(batch))
    tokens, mask = rollout.left_pad(batch, sp.pad_id, bucket=prompt_len)
    out = rollout.sample(cfg, params, jnp.asarray(tokens), jnp.asarray(mask),
                         jax.random.fold_in(key, i), sp, num_samples=group_size)
    length_b = np.asarray(out.length_b)[:min(num_groups, len(prompts) - i) * group_size]
    useful += int(length_b.sum())
    lengths += length_b.tolist()
    row_steps += num_groups * group_size * int(np.asarray(out.length_b).max())
  return useful, row_steps, lengths


def run_windowed(cfg, params, sp, prompts, num_groups, group_size, window, key,
                 prompt_len=PROMPT_LEN):
  """Slot scheduler until the stream is drained: (kept tokens, row-steps, kept lengths)."""
  source = lambda i: tppo_rollouts.Prompt(prompts[i]) if i < len(prompts) else None
  sched = tppo_rollouts.SlotScheduler(cfg, sp, num_groups=num_groups, group_size=group_size,
                                      prompt_len=prompt_len, window=window, source=source,
                                      score=lambda pid, out: np.zeros(group_size))
  buf = sched.init()
  emitted, lengths = 0, []
  while not sched.drained(buf):
    buf, done = sched.step(params, buf, key)
    lengths += [int(n) for c in done for n in c.out.length_b]
    emitted += len(done)
  assert emitted == len(prompts)
  return sum(lengths), num_groups * group_size * int(buf.decode.steps), lengths


def task_setup(args):
  """(model config, params, SamplingParams, prompt ids, prompt length, description) of a T-PPO
  run on `args.task`, built by the trainer's own `make_setup`; the first `args.prompts`
  prompts of its stream."""
  from configs import tppo as tppo_config  # pylint: disable=import-outside-toplevel
  c = tppo_config.get_config(f"model={args.model}")
  c.data.dataset = args.task if ":" in args.task else f"task:{args.task}"
  c.data.num_prompts = max(c.data.num_prompts, args.prompts)
  if args.instruction:
    c.data.instruction = args.instruction
  c.rollout.max_new_tokens = args.cap
  c.rollout.max_prompt_tokens = args.prompt_tokens
  c.rollout.prompts_per_step = args.groups
  c.rollout.group_size = args.group_size
  c.tppo.window = int(args.windows.split(",")[0])
  # The scheduler's score is not timed here: no verifier process.
  setup = tppo_loop.make_setup(c, check=lambda texts, answers, kinds: [0.0] * len(texts))
  sched = setup.scheduler
  prompts = [sched.source(i).tokens for i in range(args.prompts)]
  sp = sched.sp
  # make_setup keeps a prompt's last prompt_len tokens: count the cut ones (raise the length).
  examples, _ = trainer.load_prompts(setup.config)
  uncut = mesh_sampling.prompt_ids(
      setup.tokenizer, [examples[setup.example_index(i)] for i in range(args.prompts)],
      rollout_step.prompt_format(setup.config))
  lengths = [len(x) for x in uncut]
  desc = (f"{c.model.name} on {c.data.dataset} (instruction {c.data.instruction!r}), chat "
          f"prompts {min(lengths)}-{max(lengths)} tokens left-padded to {sched.prompt_len} "
          f"({sum(n > sched.prompt_len for n in lengths)} cut), EOS ids {tuple(sp.eos_ids)}, "
          f"temperature {sp.temperature}")
  return setup.model_cfg, setup.state.params, sp, prompts, sched.prompt_len, desc


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


def reprefill_vs_window(cfg, params, sp, num_rows, window, key, repeats=5):
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
  w = statistics.median(one_window() for _ in range(repeats))
  r = statistics.median(one_reprefill() for _ in range(repeats))
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
  ap.add_argument("--task", default="",
                  help="a built-in task (e.g. word_problems) or data spec; '' = random prompts")
  ap.add_argument("--model", default="tiny", choices=("tiny", "smollm2"),
                  help="with --task: the model (configs/tppo.py model=)")
  ap.add_argument("--instruction", default="",
                  help="with --task: data.instruction key or text ('' = the config's)")
  ap.add_argument("--update_rows", type=int, default=0,
                  help="rows of the timed T-PPO update (0 = the decode rows)")
  ap.add_argument("--prompt_tokens", type=int, default=96,
                  help="with --task: rollout.max_prompt_tokens (SmolLM2's word-problem chat "
                       "prompts with step_by_step are 66-83 tokens; the config's 64 cuts them)")
  args = ap.parse_args()

  key = jax.random.key(0)
  rows = args.groups * args.group_size
  if args.task:
    cfg, params, sp, prompts, prompt_len, desc = task_setup(args)
    print(f"{desc}; {rows} decode rows = {args.groups} groups x G={args.group_size}, "
          f"{args.prompts} prompts, cap {args.cap}, "
          f"devices={jax.device_count()} ({jax.default_backend()})")
  else:
    if args.model != "tiny":
      ap.error("--model=smollm2 needs --task (random prompts are for the tiny model)")
    cfg = tiny.tiny_config()
    params = models.init_params(cfg, key)
    sp = rollout.SamplingParams(max_new_tokens=args.cap, temperature=1.0,
                                eos_ids=tuple(range(1, 1 + args.eos)))
    prompts, prompt_len = _prompts(args.prompts), PROMPT_LEN
    print(f"tiny model (V={cfg.vocab_size}), {rows} decode rows = {args.groups} groups x "
          f"G={args.group_size}, {args.prompts} prompts, cap {args.cap}, {args.eos} EOS ids, "
          f"devices={jax.device_count()} ({jax.default_backend()})")
  filler = prompts[0] if args.task else (4,)
  fns = {"synchronous sample": lambda: run_sync(cfg, params, sp, prompts, args.groups,
                                                args.group_size, key, prompt_len, filler)}
  for w in map(int, args.windows.split(",")):
    fns[f"windowed W={w} + refill"] = (
        lambda w=w: run_windowed(cfg, params, sp, prompts, args.groups, args.group_size, w, key,
                                 prompt_len))
  table = [(name, u, rs, lengths, secs)
           for name, ((u, rs, lengths), secs) in _interleaved(fns, args.repeats).items()]
  base = table[0][1] / table[0][4]
  extra = " mean / max length |" if args.task else ""
  print("\n| method | kept tokens | row-steps | utilisation | ms / decode step | useful tok/s |"
        " vs sync |" + extra)
  print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.task else ""))
  for name, u, rs, lengths, secs in table:
    cells = f" {np.mean(lengths):.1f} / {max(lengths)} |" if args.task else ""
    print(f"| {name} | {u} | {rs} | {u / rs:.1%} | {secs / (rs / rows) * 1e3:.2f} | "
          f"{u / secs:,.0f} | {u / secs / base:.2f}x |" + cells)
  print("\nre-prefill of every row vs one window (rows mid-generation):")
  for w in map(int, args.windows.split(",")):
    r, wt = reprefill_vs_window(cfg, params, sp, rows, w, key, repeats=max(1, args.repeats))
    print(f"  W={w}: re-prefill {r * 1e3:.1f} ms, window {wt * 1e3:.1f} ms, "
          f"ratio {r / wt:.2f} (re-prefill per window adds {r / wt:.0%} to decode time)")
  update_rows = args.update_rows or rows
  times = update_step_times(cfg, params, update_rows, args.cap, repeats=max(1, args.repeats))
  print(f"\nT-PPO update step, {update_rows} rows x {args.cap} tokens: " + ", ".join(
      f"critic={m} {t * 1e3:.0f} ms" for m, t in times.items())
      + f" (separate / head = {times['separate'] / times['head']:.2f}x)")


if __name__ == "__main__":
  main()
