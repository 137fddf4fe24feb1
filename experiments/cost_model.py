"""Per-device memory of a GRPO step, predicted by arithmetic and checked against the compiler.

    python experiments/cost_model.py                        # 1.5B / 7B / 32B pod tables
    python experiments/cost_model.py --mode=one --model=qwen2.5-7b --mesh=8,8,1 --dcn=2 \\
        --prompts=32 --samples=16 --prompt_len=1024 --max_new_tokens=16384 --lora_rank=64
    python experiments/cost_model.py --mode=check           # tiny model, 8 simulated devices

`--mode=pod` (default) prints the tables of docs/scaling.md: bytes per device for each model on
64 devices, 8k and 16k new tokens, and how decode rows per device fall as the data axis grows.
`--mode=one` prints one case (`--model`, `--mesh`, `--dcn`, batch and dtype flags). `--mode=check` lowers and compiles the tiny model's real update
and sampler on the meshes (8,1,1), (1,8,1), (1,1,8), (2,2,2), (4,2,1) of 8 simulated CPU
devices and prints predicted bytes next to `compiled.memory_analysis()`, then the collectives
in the compiled HLO (several minutes on 2 cores). `--config` picks the run config of the check
(default: GRPO-λ with full fine-tuning and KL, `configs/grpo_lambda.py:model=tiny,runlocal`).
"""
import argparse
import json
import os
import sys
import time

# The check simulates 8 devices; must be set before jax is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=wrong-import-position
from concise_jax import compiled_cost, cost_model as cm
from configs import grpo_lambda, quickstart

CHECK_MESHES = ((8, 1, 1), (1, 8, 1), (1, 1, 8), (2, 2, 2), (4, 2, 1))
POD_MESHES = (cm.MeshShape(64, 1, 1), cm.MeshShape(8, 8, 1), cm.MeshShape(1, 64, 1),
              cm.MeshShape(4, 4, 4), cm.MeshShape(2, 8, 4, dcn_data=2))
POD_MODELS = ("qwen2.5-1.5b", "qwen2.5-7b", "qwen2.5-32b")


def pod_run(max_new_tokens: int, mesh: cm.MeshShape | None = None, **overrides) -> cm.RunShape:
  """The docs' pod step: 32 prompts × 16 samples, 1024-token prompts, bf16 compute, f32
  master weights and Adam, remat, KL reference; micro-batches of one row per device (as many
  global rows as the mesh has row shards), the smallest the update can take."""
  kw = dict(prompts=32, samples=16, prompt_len=1024, max_new_tokens=max_new_tokens,
            micro_batch=64, compute_dtype="bfloat16", kl=True, remat=True, logp_chunk=64)
  if mesh is not None:
    kw["micro_batch"] = cm.split_of(kw["prompts"] * kw["samples"], "batch", mesh)
  kw.update(overrides)
  return cm.RunShape(**kw)


def print_pod_tables() -> None:
  for name in POD_MODELS:
    cfg = cm.PRESETS[name]
    print(f"\n### {name} ({cm.param_count(cfg) / 1e9:.2f}B params; L={cfg.n_layers} "
          f"D={cfg.d_model} N={cfg.n_heads} K={cfg.n_kv_heads} H={cfg.head_dim} "
          f"F={cfg.mlp_dim} V={cfg.vocab_size} tied={cfg.tie_embeddings})\n")
    entries = []
    for t in (8192, 16384):
      for mesh in POD_MESHES:
        entries.append((f"{mesh.label()} T={t // 1024}k",
                        cm.step_memory(cfg, mesh, pod_run(t, mesh))))
      lora = cm.step_memory(cfg, POD_MESHES[1], pod_run(t, POD_MESHES[1], lora_rank=64))
      entries.append((f"{POD_MESHES[1].label()} T={t // 1024}k LoRA r64", lora))
    print(cm.format_table(entries))
  print("\n### decode rows per device as the data axis grows (P·G = 512 rows, Qwen2.5-7B "
        "KV cache at S=1024, T=8k, bf16)\n")
  run = pod_run(8192)
  rows = []
  for data in (1, 2, 4, 8, 16, 32, 64, 128):
    row = [data]
    for fsdp in (1, 8):
      mesh = cm.MeshShape(data, fsdp, 1)
      row += [mesh.devices, cm.rows_per_device(run, mesh),
              cm.fmt_bytes(cm.kv_cache_bytes(cm.QWEN2P5_7B, run, mesh))]
    rows.append(row)
  print(cm.markdown_table(["data", "devices (fsdp=1)", "rows/device", "KV cache/device",
                           "devices (fsdp=8)", "rows/device", "KV cache/device"], rows))


def run_from_args(args) -> cm.RunShape:
  return cm.RunShape(prompts=args.prompts, samples=args.samples, prompt_len=args.prompt_len,
                     max_new_tokens=args.max_new_tokens, micro_batch=args.micro_batch,
                     lora_rank=args.lora_rank, kl=args.kl, param_dtype=args.param_dtype,
                     compute_dtype=args.compute_dtype, remat=args.remat,
                     logp_chunk=args.logp_chunk)


def print_one(args) -> None:
  data, fsdp, tensor = (int(x) for x in args.mesh.split(","))
  mesh = cm.MeshShape(data, fsdp, tensor, dcn_data=args.dcn)
  mem = cm.step_memory(cm.PRESETS[args.model], mesh, run_from_args(args))
  print(cm.format_table([(f"{args.model} {mesh.label()}", mem)]))


# --------------------------------------------------------------------------- check


def check_config(name: str):
  module = {"grpo_lambda": grpo_lambda, "quickstart": quickstart}[name]
  config = module.get_config("model=tiny,runlocal")
  # A rollout-shaped batch where the KV cache dominates the sampler: 8 × 8 rows × 512 slots.
  config.rollout.prompts_per_step = 8
  config.rollout.group_size = 8
  config.rollout.max_prompt_tokens = 64
  config.rollout.max_new_tokens = 448
  config.optim.micro_batch = 8
  return config


def _ratio(a: int, b: int) -> str:
  return f"{a / b:.2f}" if b else "-"


def memory_rows(results) -> list[list]:
  """Predicted vs memory_analysis per mesh: arguments (exact layout check) and temp."""
  rows = []
  for r in results:
    p, pa = r["predicted"], r["predicted_args"]
    upd_temp = p["grads"] + p["activations"] + p["logits"]
    rows.append([str(tuple(r["mesh"])), p["decode_rows"],
                 f"{pa['update_args']:,}", f"{r['update']['argument']:,}",
                 _ratio(r["update"]["argument"], pa["update_args"]),
                 f"{pa['sampler_args']:,}", f"{r['sampler']['argument']:,}",
                 _ratio(r["sampler"]["argument"], pa["sampler_args"]),
                 f"{pa['prefill_out']:,}", f"{r['prefill']['output']:,}",
                 _ratio(r["prefill"]["output"], pa["prefill_out"]),
                 cm.fmt_bytes(upd_temp), cm.fmt_bytes(r["update"]["temp"]),
                 _ratio(r["update"]["temp"], upd_temp),
                 cm.fmt_bytes(r["sampler"]["temp"]),
                 _ratio(r["sampler"]["temp"], p["kv_cache"])])
  return rows


MEMORY_HEADER = ["mesh", "rows/dev", "update args pred", "compiled", "ratio",
                 "sampler args pred", "compiled", "ratio", "KV cache pred", "prefill out",
                 "ratio", "update temp pred", "compiled temp", "ratio", "sampler temp",
                 "temp / KV pred"]


def _cell(c: dict, key: str, bytes_key: str) -> str:
  n = c.get(key, 0)
  return f"{n} ({cm.fmt_bytes(c.get(bytes_key, 0))})" if n else "0"


def collective_rows(results) -> list[list]:
  """Executions (bytes) of each collective: the update per step; the sampler once per call
  (prefill, set-up) plus per decode token (inside the while loop)."""
  rows = []
  for r in results:
    u, s = r["update_collectives"], r["sampler_collectives"]
    rows.append([str(tuple(r["mesh"])), "update / step",
                 *(_cell(u[k], "per_call", "bytes_per_call") for k in compiled_cost.COLLECTIVES)])
    rows.append(["", "sampler / call",
                 *(_cell(s[k], "per_call", "bytes_per_call") for k in compiled_cost.COLLECTIVES)])
    rows.append(["", "sampler / token",
                 *(_cell(s[k], "per_token", "bytes_per_token")
                   for k in compiled_cost.COLLECTIVES)])
  return rows


def print_check(config_name: str, meshes, json_path: str = "", from_json: bool = False):
  """Compiles on each mesh (or reads a previous run's `json_path`) and prints both tables."""
  if from_json:
    with open(json_path, encoding="utf-8") as f:
      results = json.load(f)
  else:
    config = check_config(config_name)
    results = []
    for shape in meshes:
      t0 = time.perf_counter()
      results.append(compiled_cost.check_mesh(config, shape))
      print(f"compiled {shape} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if json_path:
      with open(json_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
  print(f"\n### predicted vs memory_analysis(), tiny model, config {config_name} "
        f"(P=8, G=8, S=64, T=448, micro-batch 8 rows), bytes per device\n")
  print(cm.markdown_table(MEMORY_HEADER, memory_rows(results)))
  print("\n### collectives in the compiled HLO: executions (bytes) \n")
  print(cm.markdown_table(["mesh", "function", *compiled_cost.COLLECTIVES],
                          collective_rows(results)))


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--mode", default="pod", choices=("pod", "one", "check"))
  ap.add_argument("--config", default="grpo_lambda", choices=("grpo_lambda", "quickstart"))
  ap.add_argument("--meshes", default=";".join(",".join(map(str, m)) for m in CHECK_MESHES),
                  help="check mode: ';'-separated data,fsdp,tensor shapes")
  ap.add_argument("--json", default="", help="check mode: also write the results here")
  ap.add_argument("--from_json", action="store_true",
                  help="check mode: print the tables of a previous --json run, no compiling")
  ap.add_argument("--model", default="qwen2.5-7b", choices=sorted(cm.PRESETS))
  ap.add_argument("--mesh", default="8,8,1", help="data,fsdp,tensor inside one slice")
  ap.add_argument("--dcn", type=int, default=1, help="slices joined over the data axis")
  ap.add_argument("--prompts", type=int, default=32)
  ap.add_argument("--samples", type=int, default=16)
  ap.add_argument("--prompt_len", type=int, default=1024)
  ap.add_argument("--max_new_tokens", type=int, default=8192)
  ap.add_argument("--micro_batch", type=int, default=64, help="global rows per micro-batch")
  ap.add_argument("--lora_rank", type=int, default=0)
  ap.add_argument("--kl", type=int, default=1, help="1: full fine-tuning keeps a KL reference")
  ap.add_argument("--param_dtype", default="float32", choices=sorted(cm.DTYPE_BYTES))
  ap.add_argument("--compute_dtype", default="bfloat16", choices=sorted(cm.DTYPE_BYTES))
  ap.add_argument("--remat", type=int, default=1)
  ap.add_argument("--logp_chunk", type=int, default=64)
  args = ap.parse_args()
  if args.mode == "pod":
    print_pod_tables()
  elif args.mode == "one":
    print_one(args)
  else:
    meshes = [tuple(int(x) for x in m.split(",")) for m in args.meshes.split(";")]
    print_check(args.config, meshes, args.json, args.from_json)


if __name__ == "__main__":
  main()
