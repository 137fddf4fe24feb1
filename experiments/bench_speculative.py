r"""Speculative vs plain decoding on SmolLM2-135M: tokens/s, speed-up, mean accepted length.

    python experiments/bench_speculative.py --draft=/tmp/draft --quick
    python experiments/bench_speculative.py --draft=/tmp/draft --quick --tree=4:4:16   # + tree rows
    python experiments/bench_speculative.py --model=tiny_sharp --draft=noisy_copy:0.1 --quick \
        --tree=3:3:10 --vocabs=0 --temperatures=0   # tiny smoke run, no draft directory needed

Prompts: task:word_problems with "Think step by step" (80-100 token CoT answers). For each batch
size and temperature it times the plain sampler and the speculative sampler with the full and
a reduced draft vocabulary, side by side in one process (compiled ahead, then one timed run
each), checks greedy outputs are identical, and prints a Markdown table plus the draft's
accepted-length curve from its distillation run (DIR/curve.jsonl). "round ÷ plain step" is
mean accepted × plain tok/s / speculative tok/s: what one draft-and-verify round costs in plain
decode steps, so speed-up = mean accepted / that cost. With --tree=K:D:N it adds
EAGLE-2 dynamic-tree rows (`rollout.speculative_tree`: top-K children, depth D, N verified
nodes) with their speed-up over plain and over the chain.

--draft is a draft directory, or `init` (the untrained identity-start head), or
`noisy_copy:REL` (tiny targets only: a `ModelDrafter` that is the target plus REL relative
noise, the tests' partially agreeing draft). --model=tiny_sharp is the tests' tiny target
(`draft.testing.sharp_tiny`: peaked, varied next-token distributions).
"""
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from concise_jax import data, models
from concise_jax.draft import EagleDrafter, ModelDrafter, checkpoint, init_head, testing
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP
from concise_jax.rollout import speculative_tree as ST
from concise_jax.rollout.generate import chat_ids, left_pad

_DRAFT = flags.DEFINE_string("draft", None, "Draft head directory (python -m concise_jax.draft).")
_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct",
                             "Target ('tiny' or 'tiny_sharp' for a smoke run).")
_QUICK = flags.DEFINE_boolean("quick", False, "64 new tokens, one repeat.")
_BATCHES = flags.DEFINE_string("batches", "1,4,16", "Batch sizes.")
_TEMPS = flags.DEFINE_string("temperatures", "0,0.7", "Temperatures (0 = greedy).")
_VOCABS = flags.DEFINE_string("vocabs", "0,8192", "Draft vocab sizes (0 = full).")
_CASES = flags.DEFINE_string(
    "cases", None, "Instead of the full grid: comma-separated batch:temperature:vocab+vocab, e.g. "
    "1:0:0+8192,4:0:8192 (each batch/temperature compiles its samplers: minutes on a busy CPU).")
_NUM_DRAFT = flags.DEFINE_integer("num_draft", 4, "Draft length k.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Timed runs per decoder (median reported).")
_TREE = flags.DEFINE_string("tree", "", "K:D:N: also time the EAGLE-2 dynamic tree (top-K "
                            "children, depth D, N verified nodes per row), e.g. 4:4:16. Empty: "
                            "chain only.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 128, "Completion budget (quick: 64).")
_START_AT = flags.DEFINE_string("start_at", None, "HH:MM UTC: compile, then wait for this time "
                                "and reload the draft head before timing.")
flags.mark_flags_as_required(["draft"])


def _prompts(tok, n):
  exs = data.load_dataset("task:word_problems", split="test", n=n, seed=1)
  ids = [chat_ids(tok, data.add_instruction(e, "step_by_step")) for e in exs]
  return left_pad(ids, tok.pad_id, bucket=64)


def _cases(batches):
  """(batch, temperature, [vocab sizes]) to run: --cases, or the full grid."""
  if _CASES.value:
    out = []
    for case in _CASES.value.split(","):
      b, temp, vocabs = case.split(":")
      out.append((int(b), float(temp), [int(v) for v in vocabs.split("+")]))
    return out
  vocabs = [int(x) for x in _VOCABS.value.split(",")]
  return [(b, float(temp), vocabs) for temp in _TEMPS.value.split(",") for b in batches]


def _drafter(cfg, params):
  """(drafter, load(vocab) -> draft params, abstract(vocab) -> their shapes) for --draft."""
  if _DRAFT.value.startswith("noisy_copy:"):
    dp = {"params": testing.noisy_copy(params, 1, float(_DRAFT.value.split(":")[1]))}
    return ModelDrafter(cfg), lambda vocab: dp, lambda vocab: jax.eval_shape(lambda: dp)
  if _DRAFT.value == "init":
    load = lambda vocab: {"head": init_head(cfg, params, jax.random.key(0)), "vocab_ids": None}
  else:
    load = lambda vocab: checkpoint.load(_DRAFT.value, vocab)
  return EagleDrafter(cfg), load, lambda vocab: _abstract_draft(cfg, params, vocab)


def _abstract_draft(cfg, params, vocab):
  """Shapes of the draft params (the head may not be written yet while we compile)."""
  head = jax.eval_shape(lambda: init_head(cfg, params, jax.random.key(0)))
  ids = None if vocab == 0 else jax.ShapeDtypeStruct((vocab,), jnp.int32)
  return {"head": head, "vocab_ids": ids}


def _wait_until(hhmm):
  """Sleeps until HH:MM UTC today (lets a distillation run finish while we compile)."""
  if not hhmm:
    return
  now = time.gmtime()
  h, m = (int(x) for x in hhmm.split(":"))
  wait = (h * 60 + m) * 60 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
  if wait > 0:
    print(f"waiting {wait} s for {hhmm} UTC", flush=True)
    time.sleep(wait)


def _run(compiled, *args):
  """Output and the median wall time of --repeats runs."""
  times = []
  for _ in range(_REPEATS.value):
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
  return out, float(np.median(times))


def _row(b, temp, label, out, seconds, plain_rate, same, chain_rate=0.0):
  toks = int(np.asarray(out.length_b).sum())
  rate = toks / seconds
  acc = getattr(out, "mean_accepted", None)
  # Speed-up = tokens per round / cost of a round in plain decode steps: the second factor.
  cost = f"{float(acc) * plain_rate / rate:.2f}" if acc is not None and plain_rate else "-"
  return (f"| {b} | {temp:g} | {label} | {toks} | {seconds:.2f} | {rate:.1f} | "
          f"{rate / plain_rate if plain_rate else 1.0:.2f}x | "
          f"{f'{rate / chain_rate:.2f}x' if chain_rate else '-'} | "
          f"{'-' if acc is None else f'{float(acc):.2f}'} | {cost} | {same} |"), rate


def main(argv):
  del argv
  if _MODEL.value in ("tiny", "tiny_sharp"):
    cfg, params, tok = models.tiny.load_tiny(0)
    if _MODEL.value == "tiny_sharp":
      params = testing.sharp_tiny(0)
  else:
    cfg, params, tok = models.load(_MODEL.value)
  t = 64 if _QUICK.value else _MAX_NEW.value
  batches = [int(x) for x in _BATCHES.value.split(",")]
  tokens, mask = _prompts(tok, max([b for b, _, _ in _cases(batches)]))
  drafter, load_draft, abstract_draft = _drafter(cfg, params)
  spec = SP.SpecParams(num_draft=_NUM_DRAFT.value)
  tree = ST.TreeParams(*(int(x) for x in _TREE.value.split(":"))) if _TREE.value else None
  # Phase 1: compile every case ahead (shapes only: the head's values are not needed yet).
  jobs = []
  for b, temp, vocabs in _cases(batches):
    sp = S.SamplingParams(max_new_tokens=t, temperature=temp, eos_ids=tuple(tok.eos_ids),
                          pad_id=tok.pad_id)
    args = (jnp.asarray(tokens[:b]), jnp.asarray(mask[:b]), jax.random.key(0))
    # Params are arguments, never closed over (a closure would bake 513 MB into the program).
    plain_fn = jax.jit(lambda p, tk, m, k, sp=sp: S.sample(cfg, p, tk, m, k, sp))
    spec_fn = jax.jit(lambda p, d, tk, m, k, sp=sp: SP.sample(cfg, p, drafter, d, tk, m, k, sp,
                                                              spec))
    tree_fn = jax.jit(lambda p, d, tk, m, k, sp=sp: ST.sample(cfg, p, drafter, d, tk, m, k, sp,
                                                              tree))
    compiled = {v: spec_fn.lower(params, abstract_draft(v), *args).compile() for v in vocabs}
    compiled_tree = ({v: tree_fn.lower(params, abstract_draft(v), *args).compile()
                      for v in vocabs} if tree else {})
    jobs.append((b, temp, args, plain_fn.lower(params, *args).compile(), compiled,
                 compiled_tree))
    print(f"compiled batch={b} temp={temp:g} vocabs={vocabs} tree={_TREE.value or '-'}",
          flush=True)
  _wait_until(_START_AT.value)
  # Phase 2: one timed run per case, plain, chain and tree side by side.
  print(f"\n# bench_speculative  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  "
        f"model {_MODEL.value}  draft {_DRAFT.value}  load avg {os.getloadavg()[0]:.1f}  "
        f"T={t} k={spec.num_draft}" + (f"  tree K:D:N={_TREE.value}" if tree else "") + "\n")
  print("| batch | temp | decoder | tokens | s | tok/s | vs plain | vs chain | mean accepted "
        "| round ÷ plain step | same output |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for b, temp, args, plain_c, compiled, compiled_tree in jobs:
    plain, sec = _run(plain_c, params, *args)
    line, plain_rate = _row(b, temp, "plain", plain, sec, 0, "-")
    print(line, flush=True)
    vname = lambda vocab: "full" if vocab == 0 else vocab
    for vocab, spec_c in compiled.items():
      out, sec = _run(spec_c, params, load_draft(vocab), *args)
      same = bool(np.array_equal(out.tokens_bt, plain.tokens_bt)) if temp == 0 else "n/a"
      label = f"{type(drafter).__name__} chain k={spec.num_draft} vocab={vname(vocab)}"
      line, chain_rate = _row(b, temp, label, out, sec, plain_rate, same)
      print(line, flush=True)
      if vocab in compiled_tree:
        out, sec = _run(compiled_tree[vocab], params, load_draft(vocab), *args)
        same = bool(np.array_equal(out.tokens_bt, plain.tokens_bt)) if temp == 0 else "n/a"
        label = (f"{type(drafter).__name__} tree k={tree.top_k} d={tree.depth} "
                 f"N={tree.num_nodes} vocab={vname(vocab)}")
        print(_row(b, temp, label, out, sec, plain_rate, same, chain_rate)[0], flush=True)
  curve = os.path.join(_DRAFT.value, "curve.jsonl")
  if os.path.isdir(_DRAFT.value) and os.path.exists(curve):
    print("\n## accepted-length curve during distillation (T=0.7 data, full vocab)\n")
    print("| step | mean accepted | draft top-1 | loss |")
    print("|---|---|---|---|")
    with open(curve, encoding="utf-8") as f:
      for line in f:
        r = json.loads(line)
        acc = r["mean_accepted"]      # None on steps that sampled plainly (--accept_every)
        print(f"| {r['step']} | {'-' if acc is None else f'{acc:.2f}'} | "
              f"{r['draft/top1']:.3f} | {r['draft/loss']:.3f} |")


if __name__ == "__main__":
  app.run(main)
