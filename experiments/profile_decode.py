"""Where a decode step's time goes, and which XLA:CPU flags or layouts make it faster.

    python experiments/profile_decode.py [--model=smollm2|tiny] [--batches=1,32,64]
        [--steps=4] [--sweep] [--sweep_batches=64]

Per batch size it builds the sampler's real decode state (a [B, K, S+T, H] cache per layer, half
full) and reports:
  * the sampler's loop body (`sampler._decode_loop_step`) run in a `lax.while_loop`, ms per step;
  * the compiled step's `cost_analysis()` (flops, bytes accessed) and the roofline step time
    max(flops / matmul peak, weight bytes / read bandwidth), both measured in this run;
  * isolated jitted pieces over all layers (QKV+O projections, MLP, attention over the cache,
    cache writes, LM head, sampling), grouped into matmul / attention / sampling / copies+other,
    where "other" is the loop step minus the pieces;
  * copies of cache-shaped buffers in the optimised while-loop HLO;
  * fused QKV and gate/up projections against the separate ones (same fp32 outputs asserted).
With --sweep it re-runs the loop step in one subprocess per XLA_FLAGS variant, side by side with
the default, and asserts the variant's fp32 logits equal the default's bit for bit (variants
whose outputs differ are reported, not used).
"""
import argparse
import contextlib
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import models
from concise_jax.models import layers as L
from concise_jax.models import transformer
from concise_jax.rollout import sampler

# Same-directory script: the machine-rate probes live there.
from bench_rollout import _median_seconds, matmul_peak_gflops, read_bandwidth_gbs  # pylint: disable=wrong-import-position

SP = sampler.SamplingParams(max_new_tokens=128, temperature=0.7, eos_ids=(), pad_id=0)

FLAG_VARIANTS = {
    "default": "",
    "region_copy_insertion": "--xla_cpu_copy_insertion_use_region_analysis=true",
    "xnn_graph_greedy": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "ynn_dot": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
    "onednn": "--xla_cpu_use_onednn=true",
}


def load(model: str):
  if model == "tiny":
    cfg, params, _ = models.tiny.load_tiny()
    return cfg, params, 16
  cfg, params, _ = models.load("smollm2-135m-instruct")
  return cfg, params, 64


def make_state(cfg, batch: int, prompt_len: int, seed: int = 0) -> sampler._DecodeState:
  """The sampler's decode state mid-generation: prompt + 64 tokens already in the cache."""
  max_len = prompt_len + SP.max_new_tokens
  end = prompt_len + SP.max_new_tokens // 2
  keys = jax.random.split(jax.random.key(seed), 2 * cfg.n_layers + 1)
  shape = (batch, cfg.n_kv_heads, max_len, cfg.head_dim)
  fill = lambda k: jnp.where(jnp.arange(max_len)[None, None, :, None] < end,
                             jax.random.normal(k, shape, jnp.float32), 0.0)
  cache = transformer.KVCache(
      k_bksh=tuple(fill(keys[i]) for i in range(cfg.n_layers)),
      v_bksh=tuple(fill(keys[cfg.n_layers + i]) for i in range(cfg.n_layers)),
      valid_bs=jnp.broadcast_to(jnp.arange(max_len) < end, (batch, max_len)),
      end=jnp.asarray(end, jnp.int32), pos_b=jnp.full((batch,), end, jnp.int32))
  t = SP.max_new_tokens
  return sampler._DecodeState(
      step=jnp.asarray(t // 2, jnp.int32),
      logits_bv=jax.random.normal(keys[-1], (batch, cfg.vocab_size), jnp.float32) * 3,
      cache=cache, tokens_bt=jnp.full((batch, t), -1, jnp.int32),
      logp_bt=jnp.zeros((batch, t), jnp.float32), length_b=jnp.full((batch,), t // 2, jnp.int32),
      done_b=jnp.zeros((batch,), bool), finished_b=jnp.zeros((batch,), bool))


def _decode_block_write_after(cfg, p, x_bd, cos, sin, k_cache_bksh, v_cache_bksh, valid_bs, end):
  """`transformer._decode_block`'s order, returning the written buffers: attend over the
  pre-write buffers, then write the new key/value."""
  h = L.rms_norm(x_bd[:, None], p["attn_norm"], cfg)
  q, k, v = L.qkv_projection(h, p, cfg, cos, sin)
  k_bkh, v_bkh = k[:, 0], v[:, 0]
  attn_bnh = L.decode_attention(q[:, 0], k_bkh, v_bkh, k_cache_bksh, v_cache_bksh, valid_bs, cfg)
  x_bd = x_bd + jnp.einsum("bnh,nhd->bd", attn_bnh, p["w_o"])
  x_bd = x_bd + L.gated_mlp(L.rms_norm(x_bd[:, None], p["mlp_norm"], cfg), p, cfg)[:, 0]
  slot = (0, 0, end, 0)
  return x_bd, (jax.lax.dynamic_update_slice(k_cache_bksh, k_bkh[:, :, None], slot),
                jax.lax.dynamic_update_slice(v_cache_bksh, v_bkh[:, :, None], slot))


def _decode_block_write_first(cfg, p, x_bd, cos, sin, k_cache_bksh, v_cache_bksh, valid_bs, end):
  """Tried fix: write first, then attend over the written buffers (new slot still masked, so the
  fp32 outputs are bit-identical). Measured: XLA then inserts twice as many cache copies."""
  h = L.rms_norm(x_bd[:, None], p["attn_norm"], cfg)
  q, k, v = L.qkv_projection(h, p, cfg, cos, sin)
  k_bkh, v_bkh = k[:, 0], v[:, 0]
  slot = (0, 0, end, 0)
  k_cache_bksh = jax.lax.dynamic_update_slice(k_cache_bksh, k_bkh[:, :, None], slot)
  v_cache_bksh = jax.lax.dynamic_update_slice(v_cache_bksh, v_bkh[:, :, None], slot)
  attn_bnh = L.decode_attention(q[:, 0], k_bkh, v_bkh, k_cache_bksh, v_cache_bksh, valid_bs, cfg)
  x_bd = x_bd + jnp.einsum("bnh,nhd->bd", attn_bnh, p["w_o"])
  x_bd = x_bd + L.gated_mlp(L.rms_norm(x_bd[:, None], p["mlp_norm"], cfg), p, cfg)[:, 0]
  return x_bd, (k_cache_bksh, v_cache_bksh)


def _decode_step_with(block, cfg, params, tokens_b, cache, steering=None):
  """`transformer.decode_step` with `block` doing each layer's attention and cache write."""
  assert steering is None
  params = transformer.unstack_layers(params)
  cos, sin = L.rope_cos_sin(cache.pos_b[:, None], L.rope_inv_freq(cfg))
  x_bd = transformer._embed(cfg, params, tokens_b)
  new_k, new_v = [], []
  for i, p in enumerate(params["layers"]):
    x_bd, (k_bksh, v_bksh) = block(cfg, p, x_bd, cos, sin, cache.k_bksh[i], cache.v_bksh[i],
                                   cache.valid_bs, cache.end)
    new_k.append(k_bksh)
    new_v.append(v_bksh)
  cache = cache.replace(
      k_bksh=tuple(new_k), v_bksh=tuple(new_v),
      valid_bs=jax.lax.dynamic_update_slice(cache.valid_bs, jnp.ones_like(cache.valid_bs[:, :1]),
                                            (0, cache.end)),
      end=cache.end + 1, pos_b=cache.pos_b + 1)
  x_bd = L.rms_norm(x_bd, params["final_norm"], cfg)
  return transformer.output_logits(cfg, params, x_bd[:, None])[:, 0], cache


@contextlib.contextmanager
def block_order(block):
  """Traces the sampler's decode steps with `block` doing each layer (the side-by-side)."""
  current = transformer.decode_step
  transformer.decode_step = functools.partial(_decode_step_with, block)
  try:
    yield
  finally:
    transformer.decode_step = current


def loop_fn(cfg, decode_params, steps: int):
  """`steps` iterations of the sampler's own loop body in a while_loop (state donated)."""
  step_fn = functools.partial(sampler._decode_loop_step, cfg, decode_params, SP,
                              jax.random.key(1), jnp.full((1,), 10**6, jnp.int32), None, None)

  def run(state):
    stop = state.step + steps
    return jax.lax.while_loop(lambda s: s.step < stop, step_fn, state)
  return jax.jit(run, donate_argnums=0)


REGION_ANALYSIS = {"xla_cpu_copy_insertion_use_region_analysis": True}


def step_ms(cfg, decode_params, batch, prompt_len, steps, repeats=3, compiler_options=None):
  """(ms per decode step, digest of fp32 logits+tokens after `steps` steps, compiled loop)."""
  run = loop_fn(cfg, decode_params, steps)
  compiled = run.lower(make_state(cfg, batch, prompt_len)).compile(compiler_options)
  out = compiled(make_state(cfg, batch, prompt_len))
  digest = hashlib.sha256(np.asarray(out.logits_bv).tobytes()
                          + np.asarray(out.tokens_bt).tobytes()).hexdigest()[:16]
  state = out
  times = []
  for _ in range(repeats):
    state = state.replace(step=jnp.asarray(SP.max_new_tokens // 2, jnp.int32))
    t0 = time.perf_counter()
    state = compiled(state)
    state.logits_bv.block_until_ready()
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times) / steps, digest, compiled


def cache_copies(compiled_text: str, cfg, batch: int) -> int:
  """Copy instructions of one cache buffer's shape in the optimised HLO."""
  shape = f"f32[{batch},{cfg.n_kv_heads},"
  return sum(1 for line in compiled_text.splitlines()
             if shape in line.split("=")[1 if "=" in line else 0][:60] and " copy(" in line)


def cost(compiled) -> dict:
  """flops and bytes of the compiled loop (XLA's cost analysis counts a while body once)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return {"flops": analysis.get("flops", 0.0), "bytes": analysis.get("bytes accessed", 0.0)}


def _time_jit(fn, *args, repeats=5):
  fn(*args)
  jax.block_until_ready(fn(*args))
  return 1e3 * _median_seconds(lambda: jax.block_until_ready(fn(*args)), repeats)


def piece_times(cfg, decode_params, batch, prompt_len) -> dict:
  """ms of isolated jitted pieces, each over all layers (one call, so dispatch is amortised)."""
  state = make_state(cfg, batch, prompt_len)
  layers = decode_params["layers"]
  n, k, h = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  x_bd = jax.random.normal(jax.random.key(2), (batch, cfg.d_model), jnp.float32)
  cos, sin = L.rope_cos_sin(state.cache.pos_b[:, None], L.rope_inv_freq(cfg))

  @jax.jit
  def qkvo(layers, x_bd):
    kvs = []
    for p in layers:
      q, kk, v = L.qkv_projection(L.rms_norm(x_bd[:, None], p["attn_norm"], cfg), p, cfg, cos, sin)
      x_bd = x_bd + jnp.einsum("bnh,nhd->bd", q[:, 0], p["w_o"])
      kvs.append((kk, v))
    return x_bd, kvs

  @jax.jit
  def mlp(layers, x_bd):
    for p in layers:
      x_bd = x_bd + L.gated_mlp(L.rms_norm(x_bd[:, None], p["mlp_norm"], cfg), p, cfg)[:, 0]
    return x_bd

  q_bnh = jax.random.normal(jax.random.key(3), (batch, n, h), jnp.float32)
  kv_new = jax.random.normal(jax.random.key(4), (batch, k, h), jnp.float32)

  @jax.jit
  def attention(q_bnh, cache):
    for i in range(cfg.n_layers):
      q_bnh = L.decode_attention(q_bnh, kv_new, kv_new, cache.k_bksh[i], cache.v_bksh[i],
                                 cache.valid_bs, cfg)
    return q_bnh

  @functools.partial(jax.jit, donate_argnums=0)
  def cache_write(cache):
    slot = (0, 0, cache.end, 0)
    write = lambda c: jax.lax.dynamic_update_slice(c, kv_new[:, :, None], slot)
    return cache.replace(k_bksh=tuple(map(write, cache.k_bksh)),
                         v_bksh=tuple(map(write, cache.v_bksh)))

  @jax.jit
  def lm_head(params, x_bd):
    x = L.rms_norm(x_bd, params["final_norm"], cfg)
    return transformer.output_logits(cfg, params, x[:, None])[:, 0]

  @jax.jit
  def sampling(logits_bv, key):
    return sampler.choose_tokens(logits_bv, key, SP)

  head_params = {kk: v for kk, v in decode_params.items() if kk != "layers"}
  out = {
      "qkv+o matmuls": _time_jit(qkvo, layers, x_bd),
      "mlp matmuls": _time_jit(mlp, layers, x_bd),
      "lm head": _time_jit(lm_head, head_params, x_bd),
      "attention": _time_jit(attention, q_bnh, state.cache),
      "sampling": _time_jit(sampling, state.logits_bv, jax.random.key(5)),
  }
  cache = make_state(cfg, batch, prompt_len).cache
  cache = cache_write(cache)
  jax.block_until_ready(cache)
  times = []
  for _ in range(5):
    t0 = time.perf_counter()
    cache = jax.block_until_ready(cache_write(cache))
    times.append(time.perf_counter() - t0)
  out["cache writes"] = 1e3 * statistics.median(times)
  return out


def fused_projection_ratio(cfg, decode_params, batch) -> dict:
  """Separate vs concatenated QKV and gate/up weights over all layers; fp32 outputs compared."""
  layers = decode_params["layers"]
  d = cfg.d_model
  fused = [{"w_qkv": jnp.concatenate([p["w_q"].reshape(d, -1), p["w_k"].reshape(d, -1),
                                      p["w_v"].reshape(d, -1)], axis=1),
            "w_gu": jnp.concatenate([p["w_gate"], p["w_up"]], axis=1), "w_down": p["w_down"]}
           for p in layers]
  x_bd = jax.random.normal(jax.random.key(2), (batch, d), jnp.float32)

  @jax.jit
  def separate(layers, x_bd):
    outs = []
    for p in layers:
      q = jnp.einsum("bd,dnh->bnh", x_bd, p["w_q"]).reshape(batch, -1)
      k = jnp.einsum("bd,dkh->bkh", x_bd, p["w_k"]).reshape(batch, -1)
      v = jnp.einsum("bd,dkh->bkh", x_bd, p["w_v"]).reshape(batch, -1)
      g, u = x_bd @ p["w_gate"], x_bd @ p["w_up"]
      outs.append((jnp.concatenate([q, k, v], 1), (jax.nn.silu(g) * u) @ p["w_down"]))
    return outs

  @jax.jit
  def together(fused, x_bd):
    outs = []
    for p in fused:
      g, u = jnp.split(x_bd @ p["w_gu"], 2, axis=1)
      outs.append((x_bd @ p["w_qkv"], (jax.nn.silu(g) * u) @ p["w_down"]))
    return outs

  a, b = separate(layers, x_bd), together(fused, x_bd)
  equal = all(np.array_equal(np.asarray(u), np.asarray(v))
              for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  max_diff = max(float(jnp.max(jnp.abs(u - v)))
                 for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  t_sep = _time_jit(separate, layers, x_bd)
  t_fused = _time_jit(together, fused, x_bd)
  return {"separate_ms": t_sep, "fused_ms": t_fused, "bitwise_equal": equal,
          "max_abs_diff": max_diff}


def child(args):
  """One XLA_FLAGS variant: ms per loop step and the output digest per batch, as JSON."""
  cfg, params, prompt_len = load(args.model)
  decode_params = transformer.unstack_layers(params)
  result = {}
  for batch in [int(b) for b in args.sweep_batches.split(",")]:
    ms, digest, _ = step_ms(cfg, decode_params, batch, prompt_len, args.steps)
    result[batch] = {"ms": ms, "digest": digest}
  print("RESULT " + json.dumps(result), flush=True)


def sweep(args):
  rows = {}
  order = list(FLAG_VARIANTS) + ["default"]  # default again at the end: the drift check
  for i, name in enumerate(order):
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " "
                                      + FLAG_VARIANTS[name]).strip())
    proc = subprocess.run([sys.executable, __file__, "--child", f"--model={args.model}",
                           f"--sweep_batches={args.sweep_batches}", f"--steps={args.steps}"],
                          env=env, capture_output=True, text=True, check=False)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    key = name if i < len(FLAG_VARIANTS) else "default (again)"
    if not line:
      rows[key] = None
      print(f"  {key}: failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
      continue
    rows[key] = json.loads(line[0][len("RESULT "):])
    print(f"  {key}: {rows[key]}", flush=True)
  base = rows["default"]
  print("\n| XLA_FLAGS variant | batch | ms/step | speed vs default | fp32 outputs equal |")
  print("|---|---|---|---|---|")
  for name, res in rows.items():
    if res is None:
      print(f"| {name} | - | flag rejected or crashed | - | - |")
      continue
    for batch, r in res.items():
      equal = r["digest"] == base[batch]["digest"]
      print(f"| {name} | {batch} | {r['ms']:.1f} | {base[batch]['ms'] / r['ms']:.2f}x |"
            f" {'yes' if equal else 'NO'} |")
  assert rows["default (again)"][next(iter(base))]["digest"] == next(iter(base.values()))["digest"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="smollm2", choices=("smollm2", "tiny"))
  parser.add_argument("--batches", default="64,32,1")
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--sweep", action="store_true")
  parser.add_argument("--sweep_batches", default="64")
  parser.add_argument("--child", action="store_true")
  parser.add_argument("--loops_only", action="store_true",
                      help="only the loop-step side by side (no pieces, no fused projections)")
  args = parser.parse_args()
  if args.child:
    return child(args)
  if args.sweep:
    return sweep(args)
  cfg, params, prompt_len = load(args.model)
  decode_params = transformer.unstack_layers(params)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  weight_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
  peak, bandwidth = matmul_peak_gflops(1536, 3), read_bandwidth_gbs(512, 3)
  print(f"machine: jitted fp32 matmul peak {peak:.0f} GFLOP/s, streaming read {bandwidth:.1f} GB/s,"
        f" {len(os.sched_getaffinity(0))} threads; model {n_params:,} params;"
        f" cache {prompt_len}+{SP.max_new_tokens} slots, half full", flush=True)
  table, region = [], []
  for batch in [int(b) for b in args.batches.split(",")]:
    t0 = time.perf_counter()
    with block_order(_decode_block_write_after):
      ms, digest, compiled = step_ms(cfg, decode_params, batch, prompt_len, args.steps)
      ms_region, digest_region, compiled_region = step_ms(
          cfg, decode_params, batch, prompt_len, args.steps, compiler_options=REGION_ANALYSIS)
    with block_order(_decode_block_write_first):
      ms_after, digest_after, compiled_after = step_ms(cfg, decode_params, batch, prompt_len,
                                                       args.steps)
    assert digest_region == digest, "region-analysis copy insertion changed the fp32 outputs"
    assert digest_after == digest, "writing the cache before attention changed the fp32 outputs"
    copies = [cache_copies(x.as_text(), cfg, batch)
              for x in (compiled, compiled_region, compiled_after)]
    c = cost(compiled)
    roof_ms = 1e3 * max(c["flops"] / (peak * 1e9), weight_bytes / (bandwidth * 1e9))
    print(f"batch {batch}: {ms:.1f} ms/step, {c['flops'] / 1e9:.2f} GFLOP,"
          f" {c['bytes'] / 2**20:.0f} MiB accessed, roofline {roof_ms:.1f} ms"
          f" ({roof_ms / ms:.0%}), cache copies in loop HLO: {copies[0]}"
          f" [{time.perf_counter() - t0:.0f}s]", flush=True)
    print(f"  region-analysis copy insertion: {ms_region:.1f} ms/step ({ms / ms_region:.2f}x),"
          f" write-before-attention: {ms_after:.1f} ms/step ({ms / ms_after:.2f}x);"
          f" cache copies {copies}; fp32 outputs equal", flush=True)
    if args.loops_only:
      continue
    pieces = piece_times(cfg, decode_params, batch, prompt_len)
    fused = fused_projection_ratio(cfg, decode_params, batch)
    groups = {"matmul": pieces["qkv+o matmuls"] + pieces["mlp matmuls"] + pieces["lm head"],
              "attention": pieces["attention"], "sampling": pieces["sampling"],
              "copies+other": max(ms - sum(pieces.values()), 0.0) + pieces["cache writes"]}
    table.append((batch, ms, c, roof_ms, copies[0], pieces, groups, fused))
    region.append((batch, ms, ms_region, ms_after, copies, roof_ms))
    print("  pieces (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in pieces.items()))
    print("  shares: " + ", ".join(f"{k} {v / ms:.0%}" for k, v in groups.items()))
    print(f"  fused QKV+gate/up: separate {fused['separate_ms']:.2f} ms, fused"
          f" {fused['fused_ms']:.2f} ms ({fused['separate_ms'] / fused['fused_ms']:.2f}x),"
          f" bitwise equal {fused['bitwise_equal']} (max |diff| {fused['max_abs_diff']:.1e})"
          f" [{time.perf_counter() - t0:.0f}s]", flush=True)
  print("\n| batch | ms/step | tok/s | GFLOP/step | MiB accessed | roofline ms | % roofline |"
        " matmul | attention | sampling | copies+other | cache copies in loop |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
  for batch, ms, c, roof_ms, copies, pieces, groups, _ in table:
    shares = " | ".join(f"{v:.1f} ms ({v / ms:.0%})" for v in groups.values())
    print(f"| {batch} | {ms:.1f} | {1e3 * batch / ms:.0f} | {c['flops'] / 1e9:.2f} |"
          f" {c['bytes'] / 2**20:.0f} | {roof_ms:.1f} | {roof_ms / ms:.0%} | {shares} | {copies} |")
  print("\n| batch | before ms/step | region-analysis flag ms/step | write-before-attention"
        " ms/step | speed-up (write first) | cache copies (before/flag/write first) |"
        " tok/s with flag | % roofline with flag |\n|---|---|---|---|---|---|---|---|")
  for batch, ms, ms_region, ms_after, copies, roof_ms in region:
    print(f"| {batch} | {ms:.1f} | {ms_region:.1f} ({ms / ms_region:.2f}x) | {ms_after:.1f} |"
          f" {ms / ms_after:.2f}x | {'/'.join(map(str, copies))} | {1e3 * batch / ms_region:.0f} |"
          f" {roof_ms / ms_region:.0%} |")


if __name__ == "__main__":
  main()
