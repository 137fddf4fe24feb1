r"""ASC (arXiv 2507.04742) on SmolLM2-135M: accuracy and tokens, unsteered vs steered.

    python experiments/asc.py --out=/tmp/asc [--data=task:add_1digit] [--data=mawps:PATH] \
        --pair_problems=16 --pair_samples=4 --n=32 --layers=19,23,27 --strengths=1,2

1. Pairs from the model's own samples (our design, not ASC's): `--pair_problems` train
   problems × `--pair_samples` samples at T = 0.7 with a step-by-step prompt; per problem the
   shortest vs the longest correct answer (`steering.pairs.from_own_samples`).
2. Vectors at each layer (last token, not normalised); KL and its Hoeffding bound measured per
   (layer, strength) on calibration contexts built from the pairs.
3. Greedy evaluation on `--n` test problems per dataset: every (layer, strength) plus the
   unsteered baseline runs as rows of the same batches (per-row steering: one compile).
4. The per-decode-step overhead of steering (decode_step timed with and without, interleaved).

Prints one table per dataset (accuracy ± binomial standard error, mean tokens, truncation,
KL); writes results.json, pairs.jsonl, the vectors and pareto.png under --out. Pairs and
vectors found in --out are reused.
"""
import argparse
import dataclasses
import json
import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
# pylint: disable=wrong-import-position
import matplotlib.pyplot as plt

from concise_jax import data, models, rollout, steering, verify
from concise_jax.eval import metrics, runner
from concise_jax.train import rollout_step

MODEL = "smollm2-135m-instruct"
INSTRUCTION = "step_by_step"


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", required=True)
  p.add_argument("--data", action="append", default=None,
                 help="task:add_1digit (default) and/or mawps:PATH; repeatable")
  p.add_argument("--model", default=MODEL, help="eval.runner.load_policy spec ('tiny' smoke)")
  p.add_argument("--pairs", default="", help="a user JSONL of {problem, concise, verbose} "
                 "instead of the model's own samples")
  p.add_argument("--pair_data", default="task:add_1digit", help="train problems for the pairs")
  p.add_argument("--pair_problems", type=int, default=16)
  p.add_argument("--pair_samples", type=int, default=4)
  p.add_argument("--n", type=int, default=32, help="test problems per dataset")
  p.add_argument("--layers", default="19,23,27")
  p.add_argument("--strengths", default="1,2",
                 help="γ values (raw vector multiples) or KL targets in nats (kl0.3)")
  p.add_argument("--configs", default="",
                 help="explicit layer:strength list (e.g. 19:1,23:1,27:1,23:2); overrides the "
                      "layers × strengths grid")
  p.add_argument("--max_new_tokens", type=int, default=96)
  p.add_argument("--pair_max_new_tokens", type=int, default=64)
  p.add_argument("--batch", type=int, default=80, help="decode rows per call")
  p.add_argument("--timing_batch", type=int, default=8)
  p.add_argument("--seed", type=int, default=0)
  return p.parse_args()


def load_examples(spec: str, split: str, n: int, seed: int) -> list:
  if spec.startswith("task:"):
    return list(data.load_dataset(spec, split=split, n=n, seed=seed))
  return list(data.load_dataset(spec))[:n]


def build_pairs(args, cfg, params, tok) -> list:
  path = os.path.join(args.out, "pairs.jsonl")
  if args.pairs or os.path.exists(path):
    return steering.pairs.from_jsonl(args.pairs or path)
  examples = load_examples(args.pair_data, "train", args.pair_problems, args.seed)
  sp = rollout.SamplingParams(max_new_tokens=args.pair_max_new_tokens, temperature=0.7,
                              eos_ids=tuple(tok.eos_ids), pad_id=tok.pad_id)
  t0 = time.time()
  pairs = steering.pairs.from_own_samples(
      cfg, params, tok, examples, jax.random.key(args.seed), sp, rollout_step.check_in_process,
      num_samples=args.pair_samples, instruction=INSTRUCTION,
      batch_prompts=len(examples))
  print(f"pairs: {len(pairs)} of {len(examples)} problems ({time.time() - t0:.0f} s)", flush=True)
  steering.pairs.to_jsonl(pairs, path)
  return pairs


def build_vectors(args, cfg, params, tok, pairs, layers) -> dict:
  paths = {l: os.path.join(args.out, f"asc_l{l}.safetensors") for l in layers}
  if all(os.path.exists(p) for p in paths.values()):
    return {l: steering.load(p) for l, p in paths.items()}
  source = f"jsonl:{args.pairs}" if args.pairs else f"own_samples:{args.pair_data}"
  vecs = steering.extract(cfg, params, tok, pairs, layers, model=args.model,
                          pairs_source=source)
  for l, v in vecs.items():
    steering.save(v, paths[l])
  return vecs


def decode_configs(args, layers, strengths) -> list[tuple[int, str]]:
  """(layer, strength spec): a γ ("1.5") or a target mean KL in nats ("kl0.3")."""
  if args.configs:
    return [(int(a), b) for a, b in (c.split(":") for c in args.configs.split(","))]
  return [(l, g) for l in layers for g in strengths]


def resolve_strengths(args, cfg, params, tok, vecs, configs, contexts):
  """Measures KL (and its Hoeffding bound) for every config, solving γ for "klX" targets;
  calibrated vectors are saved with their strength, for `--steering` without a strength."""
  resolved, kls = [], {}
  for l, spec in configs:
    calibrator = steering.Calibrator(cfg, params, contexts, vecs[l], pad_id=tok.pad_id)
    if spec.startswith("kl"):
      m = steering.calibrate(calibrator, float(spec[2:]), rtol=0.05, max_evals=12)
      steering.save(dataclasses.replace(vecs[l], extra=m.as_metadata()),
                    os.path.join(args.out, f"asc_l{l}_{spec}.safetensors"))
    else:
      m = calibrator.measure(float(spec))
    resolved.append((l, m.strength))
    kls[label_of((l, m.strength))] = dataclasses.asdict(m)
    print(f"{label_of((l, m.strength))} ({spec}): KL {m.kl:.4f} (direct {m.kl_direct:.4f}), "
          f"Hoeffding mean {m.hoeffding:.3f} max {m.hoeffding_max:.3f} over "
          f"{m.num_contexts} contexts", flush=True)
  return resolved, kls


def label_of(config) -> str:
  return "unsteered" if config is None else f"L{config[0]} γ={config[1]:.3g}"


def evaluate(args, cfg, params, tok, examples, vecs, configs):
  """Greedy completions of every example under every config (None = unsteered), as rows."""
  rows = [(i, c) for c in [None] + configs for i in range(len(examples))]
  d = cfg.d_model
  ids = [rollout.chat_ids(tok, data.add_instruction(ex, INSTRUCTION)) for ex in examples]
  prompt_len = max(len(x) for x in ids)
  sp = rollout.SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0,
                              eos_ids=tuple(tok.eos_ids), pad_id=tok.pad_id)
  results = {}
  for start in range(0, len(rows), args.batch):
    chunk = rows[start:start + args.batch]
    real = len(chunk)
    chunk = chunk + [chunk[-1]] * (args.batch - real)
    tokens, mask = rollout.left_pad([ids[i] for i, _ in chunk], tok.pad_id, min_len=prompt_len)
    vec_bd = np.stack([vecs[c[0]].vector_d if c else np.zeros(d, np.float32) for _, c in chunk])
    steer = models.Steering.create(vec_bd, [c[0] if c else 0 for _, c in chunk],
                                   [c[1] if c else 0.0 for _, c in chunk], "last")
    t0 = time.time()
    out = rollout.sample(cfg, params, tokens, mask, jax.random.key(0), sp, steering=steer)
    texts = rollout.completions_to_text(tok, out)
    length_b, truncated_b = (np.asarray(x) for x in jax.device_get((out.length_b, out.truncated_b)))
    print(f"  batch {start // args.batch}: {time.time() - t0:.0f} s, "
          f"{int(length_b.max())} steps", flush=True)
    refs = [verify.reference_of(examples[i]) for i, _ in chunk]
    correct = rollout_step.check_in_process(texts, [r for r, _ in refs], [k for _, k in refs])
    for row in range(real):
      i, c = chunk[row]
      results.setdefault(c, []).append({"correct": bool(correct[row]),
                                        "tokens": int(length_b[row]),
                                        "truncated": bool(truncated_b[row]),
                                        "text": texts[row]})
  return results


def summarise(records) -> dict:
  n = len(records)
  acc = sum(r["correct"] for r in records) / n
  toks = [r["tokens"] for r in records]
  return {"n": n, "accuracy": acc, "acc_se": math.sqrt(acc * (1 - acc) / n),
          "tokens": statistics.mean(toks),
          "tokens_se": statistics.stdev(toks) / math.sqrt(n) if n > 1 else 0.0,
          "truncation": sum(r["truncated"] for r in records) / n}


def step_overhead(args, cfg, params, vec, reps: int = 5, steps: int = 8) -> dict:
  """Median seconds per decode step at `timing_batch` rows, unsteered vs steered (interleaved)."""
  b = args.timing_batch
  tokens = jnp.full((b, 16), 5, jnp.int32)
  mask = jnp.ones((b, 16), jnp.int32)
  steer = vec.steering(1.0)
  dec_params = models.unstack_layers(params)

  @jax.jit
  def run(steering_arg, tokens, mask):
    _, cache = models.prefill(cfg, params, tokens, mask, 16 + steps, steering_arg)
    def body(c, _):
      logits, c = models.decode_step(cfg, dec_params, jnp.full((b,), 5, jnp.int32), c,
                                     steering_arg)
      return c, logits[:, 0]
    return jax.lax.scan(body, cache, None, length=steps)[1]

  prefill_only = jax.jit(lambda s, t, m: models.prefill(cfg, params, t, m, 16 + steps, s)[0])
  times = {"unsteered": [], "steered": []}
  for arg in (None, steer):                       # compile both first
    jax.block_until_ready(run(arg, tokens, mask))
    jax.block_until_ready(prefill_only(arg, tokens, mask))
  for _ in range(reps):
    for name, arg in (("unsteered", None), ("steered", steer)):
      t0 = time.perf_counter()
      jax.block_until_ready(run(arg, tokens, mask))
      t1 = time.perf_counter()
      jax.block_until_ready(prefill_only(arg, tokens, mask))
      t2 = time.perf_counter()
      times[name].append(((t1 - t0) - (t2 - t1)) / steps)
  med = {k: statistics.median(v) for k, v in times.items()}
  return {"batch": b, "reps": reps, "steps": steps, "s_per_step": med,
          "overhead": med["steered"] / med["unsteered"] - 1.0, "all": times}


def table(label, summaries, kls) -> str:
  lines = [f"### {label} (greedy, n = {summaries['unsteered']['n']} problems per row, "
           f"± = binomial / mean standard error)",
           "| config | accuracy % | mean tokens | truncated % | KL (nats) | Hoeffding bound |",
           "|---|---|---|---|---|---|"]
  for name, s in summaries.items():
    kl = kls.get(name)
    kl_txt = ("–", "–") if kl is None else (f"{kl['kl']:.3f}", f"{kl['hoeffding']:.3f}")
    lines.append(f"| {name} | {100 * s['accuracy']:.1f} ± {100 * s['acc_se']:.1f} | "
                 f"{s['tokens']:.1f} ± {s['tokens_se']:.1f} | {100 * s['truncation']:.0f} | "
                 f"{kl_txt[0]} | {kl_txt[1]} |")
  return "\n".join(lines)


def plot(path, per_dataset):
  fig, axes = plt.subplots(1, len(per_dataset), figsize=(5.5 * len(per_dataset), 4.2),
                           squeeze=False)
  for ax, (label, summaries) in zip(axes[0], per_dataset.items()):
    names = list(summaries)
    x = [summaries[n]["tokens"] for n in names]
    y = [100 * summaries[n]["accuracy"] for n in names]
    err = [100 * summaries[n]["acc_se"] for n in names]
    ax.errorbar(x, y, yerr=err, fmt="o", capsize=3)
    for n, xi, yi in zip(names, x, y):
      ax.annotate(n, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = metrics.pareto_front(x, [summaries[n]["accuracy"] for n in names])
    fx, fy = zip(*sorted((x[i], y[i]) for i in front))
    ax.step(fx, fy, where="post", alpha=0.5)
    ax.set_xlabel("mean generated tokens")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"ASC on SmolLM2-135M: {label}")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main():
  args = parse_args()
  os.makedirs(args.out, exist_ok=True)
  specs = args.data or ["task:add_1digit"]
  layers = [int(x) for x in args.layers.split(",")]
  strengths = args.strengths.split(",")
  policy = runner.load_policy(args.model)
  cfg, params, tok = policy.cfg, policy.params, policy.tokenizer
  configs = decode_configs(args, layers, strengths)
  layers = sorted({l for l, _ in configs})
  pairs = build_pairs(args, cfg, params, tok)
  if not pairs:
    raise SystemExit("no pairs: no problem had two correct answers of different lengths")
  vecs = build_vectors(args, cfg, params, tok, pairs, layers)
  for l, v in vecs.items():
    print(f"layer {l}: |v| = {np.linalg.norm(v.vector_d):.3f} from {v.num_pairs} pairs",
          flush=True)
  contexts = steering.contexts_from_pairs(tok, pairs, cuts_per_answer=1, seed=args.seed)
  configs, kls = resolve_strengths(args, cfg, params, tok, vecs, configs, contexts)
  per_dataset, raw = {}, {}
  for spec in specs:
    examples = load_examples(spec, "test", args.n, args.seed)
    t0 = time.time()
    results = evaluate(args, cfg, params, tok, examples, vecs, configs)
    print(f"{spec}: {time.time() - t0:.0f} s", flush=True)
    label = spec.split(":", 1)[1] if spec.startswith("task:") else os.path.basename(spec)
    per_dataset[label] = {label_of(c): summarise(r) for c, r in results.items()}
    raw[label] = {label_of(c): r for c, r in results.items()}
    with open(os.path.join(args.out, "eval_partial.json"), "w") as f:   # survives a later crash
      json.dump({"summaries": per_dataset, "completions": raw, "kl": kls}, f, indent=1)
  overhead = step_overhead(args, cfg, params, vecs[layers[0]])
  for label, summaries in per_dataset.items():
    print(table(label, summaries, kls))
  print(f"\nper-decode-step time at batch {overhead['batch']} (median of {overhead['reps']} "
        f"interleaved reps of {overhead['steps']} steps): unsteered "
        f"{1e3 * overhead['s_per_step']['unsteered']:.2f} ms, steered "
        f"{1e3 * overhead['s_per_step']['steered']:.2f} ms, overhead "
        f"{100 * overhead['overhead']:+.1f}%")
  plot(os.path.join(args.out, "pareto.png"), per_dataset)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump({"args": vars(args), "num_pairs": len(pairs), "kl": kls, "summaries": per_dataset,
               "overhead": overhead, "completions": raw}, f, indent=1)
  print(f"wrote {args.out}/results.json, pareto.png")


if __name__ == "__main__":
  main()
