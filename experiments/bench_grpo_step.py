r"""GRPO step race (issue 3): seconds per GRPO step, ours vs TRL `GRPOTrainer`, side by side.

    python experiments/bench_grpo_step.py [--steps=2] [--threads=2]
        [--systems=ours_before,ours,trl] [--kl=off,on] [--eos] [--max_prompt_tokens=0]
        [--cache_dir=DIR]
    python experiments/bench_grpo_step.py --quick      # 2 prompts x 2 samples x 8 tokens, 1 step

One step = rollout of P prompts x G samples x T new tokens (default 8 x 8 x 128) on the real
SmolLM2-135M-Instruct, 0/1 correctness reward, one full fine-tuning update (fp32, AdamW lr 1e-6,
wd 0.01, grad clip 1, PPO clip 0.2, 1 PPO epoch x 1 minibatch as 8 micro-batches of 8 rows,
token-mean loss), with KL off (beta 0) and on (k3, beta 0.001, reference = initial policy).

Both systems get the same settings:
- the same P prompts from `task:add_1digit` with the "brief" instruction, chat-templated by our
  tokenizer (TRL receives the rendered text and must tokenise it to the same ids: checked), and
  padded to the longest prompt on both sides (`--max_prompt_tokens=0`; our configs pad to 64);
- temperature 0.7, no top-k / top-p; every row generates exactly T tokens (ours: SamplingParams
  without EOS ids; TRL: `generation_kwargs={"min_new_tokens": T}`, which masks EOS), so both
  updates see P*G*T completion tokens;
- the same reward: `concise_jax.verify.is_correct` in-process (lenient last-number parsing);
- remat per layer (ours) vs gradient checkpointing (TRL);
- the same thread count: each system runs in its own subprocess pinned to `--threads` cores
  with `sched_setaffinity` (what `taskset` does) before jax/torch are imported. XLA:CPU sizes
  its thread pools from the affinity mask (checked: 13 vs 17 OS threads at 1 vs 2 cores); torch
  also gets `torch.set_num_threads` and OMP/MKL_NUM_THREADS.

A step is split into rollout (the generate call: `mesh_sampling.sample` for ours, the unwrapped
model's `generate` for TRL, both timed to completion), scoring (verification + reward: our
`check` and jitted reward vs TRL's reward function) and update (the rest of the step: prompt
encoding, decoding, log-prob forwards incl. the KL reference, backward, optimizer). Steps are
timed around `train.train_step` (ours) and from `on_step_begin` to `on_step_end` (TRL callback).
Each (system, KL) pair runs in a fresh subprocess, so peak RSS (`ru_maxrss`) is its own: 1
warm-up step (ours: compiles; lowering + XLA compile time reported separately, from
jax.monitoring) + `--steps` timed steps, median of each column reported.

Systems: `ours` is configs/grpo.py as it is now (remat "dots", each group's prompt computed
once: `train.share_prompt`); `ours_before` is the same with the settings of the first race
(remat "full", `train.share_prompt=False`), so the gain of the faster-step work is measured
side by side in one run; `trl` is TRL's GRPOTrainer.

`--eos` is the realistic variant: EOS is allowed on both sides (no forced length; ours also cuts
micro-batches to length buckets, `optim.length_buckets=4`), rows end where the model stops, and
the report adds the generated (useful) tokens per step and seconds per 1k useful tokens, since
the two systems' samples differ in length.

TRL loads the weights from a Hugging Face directory written once by our exporter
(`export_hf_checkpoint`) into `--cache_dir`. Without trl/torch only ours runs.
"""
import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# This checkout's concise_jax and configs/, whatever (if anything) is pip-installed.
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
RESULT_TAG = "BENCH_RESULT "
LOG_TAG = "[bench] "
MODEL = "smollm2-135m-instruct"
BETAS = {"off": 0.0, "on": 0.001}


@dataclasses.dataclass(frozen=True)
class Sizes:
  """One benchmark shape: P prompts x G samples x T new tokens, micro-batch rows, steps."""
  prompts: int = 8
  group_size: int = 8
  new_tokens: int = 128
  micro_batch: int = 8
  warmup: int = 1
  steps: int = 2

  @property
  def rows(self) -> int:
    return self.prompts * self.group_size


QUICK = Sizes(prompts=2, group_size=2, new_tokens=8, micro_batch=4, warmup=0, steps=1)


def _log(msg: str):
  print(LOG_TAG + msg, flush=True)


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux


def _steal_jiffies() -> tuple[int, int]:
  """(steal, total) CPU jiffies from /proc/stat: steal time marks a noisy shared VM."""
  try:
    with open("/proc/stat", encoding="ascii") as f:
      fields = [int(x) for x in f.readline().split()[1:]]
    return fields[7], sum(fields)
  except (OSError, IndexError, ValueError):
    return 0, 0


def _breakdown(step_s: float, rollout_s: float, scoring_s: float, **extra) -> dict:
  """One step's split; update is the remainder so the three parts add up to the step."""
  return {"step_s": step_s, "rollout_s": rollout_s, "scoring_s": scoring_s,
          "update_s": step_s - rollout_s - scoring_s, **extra}


def _summarise(records: list[dict], warmup_records: list[dict]) -> dict:
  """Median of each timed quantity over the timed steps, plus the warm-up step time."""
  keys = ("step_s", "rollout_s", "scoring_s", "update_s", "accuracy", "useful_tokens")
  out = {k: statistics.median(r[k] for r in records) for k in keys}
  out["min_tokens"] = min(r["min_tokens"] for r in records + warmup_records)
  out["max_tokens"] = max(r["max_tokens"] for r in records + warmup_records)
  out["warmup_s"] = warmup_records[0]["step_s"] if warmup_records else None
  out["steps_s"] = [round(r["step_s"], 2) for r in records]
  return out


# ------------------------------------------------------------------------------ shared settings


# The settings of the first race (2026-11-22) that the faster-step work changed.
BEFORE = {"model.remat": "full", "train.share_prompt": False}
EOS_OURS = {"optim.length_buckets": 4}


def ours_config(sizes: Sizes, beta: float, max_prompt_tokens: int, *, before: bool = False,
                eos: bool = False):
  """configs/grpo.py on the real model, cut to the benchmark's shape and KL setting
  (`before`: the first race's remat / prompt settings; `eos`: the realistic variant)."""
  from configs import grpo  # pylint: disable=import-outside-toplevel
  c = grpo.get_config()            # ppo_clip 0.2/0.2, token_mean, k3, adamw lr 1e-6, remat
  c.kl.coef = beta                 # 0 drops the reference forward
  c.data.num_prompts = sizes.prompts   # the same P prompts every step
  c.rollout.prompts_per_step = sizes.prompts
  c.rollout.group_size = sizes.group_size
  c.rollout.max_new_tokens = sizes.new_tokens
  c.rollout.max_prompt_tokens = max_prompt_tokens or 64   # 0: set to the longest prompt later
  c.verify.num_workers = 0         # in-process is_correct, like the TRL reward function
  c.optim.micro_batch = sizes.micro_batch
  c.train.steps = sizes.warmup + sizes.steps
  c.eval.every = 0
  for key, value in {**(EOS_OURS if eos else {}), **(BEFORE if before else {})}.items():
    section, name = key.split(".")
    c[section][name] = value
  return c


def _prompt_records(config, tokenizer) -> list[dict]:
  """The benchmark prompts as our host loop renders them: text, ids, reference, kind."""
  from concise_jax import data, rollout, verify  # pylint: disable=import-outside-toplevel
  from concise_jax import train  # pylint: disable=import-outside-toplevel
  out = []
  for ex in train.load_prompts(config)[0]:
    messages = ([{"role": "system", "content": config.data.system_prompt}]
                if config.data.system_prompt else [])
    messages.append({"role": "user", "content": data.add_instruction(ex, config.data.instruction)})
    text = tokenizer.apply_chat_template(messages)
    ids = rollout.chat_ids(tokenizer, messages[-1]["content"], config.data.system_prompt or None)
    assert tokenizer.encode(text) == ids
    answer, kind = verify.reference_of(ex)
    out.append({"text": text, "ids": ids, "answer": answer, "kind": kind})
  return out


def _is_correct(completion: str, reference: str, kind: str) -> bool:
  """Our verifier as `rollout_step.check_in_process` calls it: an error counts as wrong."""
  from concise_jax import verify  # pylint: disable=import-outside-toplevel
  try:
    return verify.is_correct(completion, reference, kind)
  except Exception:  # pylint: disable=broad-except
    return False


# ------------------------------------------------------------------------------ ours


@contextlib.contextmanager
def _patched(obj, name: str, value):
  """Temporarily replaces `obj.name` (instrumentation of module-level calls)."""
  original = getattr(obj, name)
  setattr(obj, name, value)
  try:
    yield original
  finally:
    setattr(obj, name, original)


def _timed(fn, acc: dict, key: str, on_result=None):
  """`fn` that adds its wall time (results waited for) to acc[key]."""
  import jax  # pylint: disable=import-outside-toplevel

  def wrapper(*args, **kwargs):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    acc[key] += time.perf_counter() - t0
    if on_result is not None:
      on_result(out)
    return out
  return wrapper


# Lowering and XLA compilation (not tracing, whose events nest inside each other).
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")


def _count_compile_time(acc: dict):
  """Adds every jit lowering + XLA compile duration to acc["compile"] (jax.monitoring)."""
  import jax  # pylint: disable=import-outside-toplevel

  def listener(event: str, duration_secs: float, **kwargs):
    del kwargs
    if event in _COMPILE_EVENTS:
      acc["compile"] += duration_secs
  jax.monitoring.register_event_duration_secs_listener(listener)


def run_ours(spec: dict) -> dict:
  """Warm-up + timed steps of our host loop (`train.train_step`), instrumented."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from concise_jax import train  # pylint: disable=import-outside-toplevel
  from concise_jax.rollout import mesh_sampling  # pylint: disable=import-outside-toplevel
  from concise_jax.train import rollout_step  # pylint: disable=import-outside-toplevel
  sizes = Sizes(**spec["sizes"])
  config = ours_config(sizes, spec["beta"], spec["max_prompt_tokens"],
                       before=spec["role"] == "ours_before", eos=spec["eos"])
  t0 = time.perf_counter()
  r = train.make_trainer(config)
  state, close_checker = r.state, r.close
  prompts = _prompt_records(config, r.tokenizer)
  if not spec["max_prompt_tokens"]:
    # The sampler and update read this per step; nothing built by make_trainer depends on it.
    config.rollout.max_prompt_tokens = max(len(p["ids"]) for p in prompts)
  _log(f"ours: setup {time.perf_counter() - t0:.1f}s, prompts padded to "
       f"{config.rollout.max_prompt_tokens} tokens, threads={len(os.sched_getaffinity(0))}")
  setup_rss = _peak_rss_gib()
  acc = {"rollout": 0.0, "scoring": 0.0, "compile": 0.0}
  _count_compile_time(acc)
  lengths, correct = [], []
  r.check = _timed(r.check, acc, "scoring", on_result=correct.extend)
  r.fns.score = _timed(r.fns.score, acc, "scoring")
  # No EOS ids: every row runs to max_new_tokens, as TRL's min_new_tokens forces (--eos: keep
  # them, rows end where the model stops).
  no_eos = lambda *a, **k: dataclasses.replace(original_sp(*a, **k), eos_ids=())
  records = []
  with _patched(rollout_step, "sampling_params",
                rollout_step.sampling_params if spec["eos"] else no_eos) as original_sp, \
      _patched(mesh_sampling, "sample", _timed(mesh_sampling.sample, acc, "rollout",
                                               on_result=lambda o: lengths.append(
                                                   np.asarray(o.out.length_b)))):
    for step in range(sizes.warmup + sizes.steps):
      acc.update(rollout=0.0, scoring=0.0, compile=0.0)
      lengths.clear()
      correct.clear()
      t0 = time.perf_counter()
      state, metrics = train.train_step(r, state, step)
      step_s = time.perf_counter() - t0
      all_lengths = np.concatenate(lengths)
      records.append(_breakdown(step_s, acc["rollout"], acc["scoring"],
                                accuracy=float(np.mean(correct)),
                                min_tokens=int(all_lengths.min()),
                                max_tokens=int(all_lengths.max()),
                                useful_tokens=int(all_lengths.sum()),
                                jit_update_s=metrics["perf/update_s"],
                                compile_s=acc["compile"]))
      _log(f"ours step {step}: {step_s:.1f}s (rollout {acc['rollout']:.1f}s, "
           f"scoring {acc['scoring']:.2f}s, jitted update {metrics['perf/update_s']:.1f}s, "
           f"compiling {acc['compile']:.1f}s)")
  close_checker()
  del state
  out = _summarise(records[sizes.warmup:], records[:sizes.warmup])
  out["jit_update_s"] = statistics.median(r["jit_update_s"] for r in records[sizes.warmup:])
  out["compile_s"] = sum(r["compile_s"] for r in records[:sizes.warmup])
  out["timed_compile_s"] = sum(r["compile_s"] for r in records[sizes.warmup:])
  out["setup_rss_gib"] = setup_rss
  out["prompt_tokens"] = config.rollout.max_prompt_tokens
  out["backend"] = f"jax {jax.__version__}"
  return out


# ------------------------------------------------------------------------------ TRL


def prepare_peer_inputs(spec: dict) -> dict:
  """Writes the HF checkpoint (once, cached) and this run's prompts for the TRL subprocess."""
  from concise_jax import models  # pylint: disable=import-outside-toplevel
  from concise_jax.models import gguf_loading, hf_loading  # pylint: disable=import-outside-toplevel
  from concise_jax.models.tokenizer import Tokenizer  # pylint: disable=import-outside-toplevel
  sizes, hf_dir = Sizes(**spec["sizes"]), spec["hf_dir"]
  config = ours_config(sizes, 0.0, spec["max_prompt_tokens"])
  done = all(os.path.exists(os.path.join(hf_dir, f))
             for f in ("config.json", "model.safetensors", "tokenizer.json"))
  if done:
    tokenizer = Tokenizer.from_gguf(gguf_loading.locate_smollm2_gguf())
  else:
    t0 = time.perf_counter()
    cfg, params, tokenizer = models.load(MODEL)
    tmp = hf_dir + ".partial"
    hf_loading.export_hf_checkpoint(
        cfg, params, tmp, extra_config={"bos_token_id": tokenizer.bos_id,
                                        "eos_token_id": list(tokenizer.eos_ids),
                                        "pad_token_id": tokenizer.pad_id})
    _save_hf_tokenizer(tokenizer, tmp)
    shutil.rmtree(hf_dir, ignore_errors=True)   # an incomplete earlier export
    os.replace(tmp, hf_dir)
    _log(f"exported {MODEL} to {hf_dir} in {time.perf_counter() - t0:.0f}s")
  prompts = _prompt_records(config, tokenizer)
  with open(spec["prompts_file"], "w", encoding="utf-8") as f:
    json.dump(prompts, f)
  return {"prompt_tokens": max(len(p["ids"]) for p in prompts)}


def _save_hf_tokenizer(tokenizer, path: str):
  """tokenizer.json from our own `tokenizers` backend, so TRL's ids equal ours exactly
  (transformers' GGUF tokenizer conversion need not split digits the way SmolLM2 does)."""
  import transformers  # pylint: disable=import-outside-toplevel
  backend = tokenizer._tk  # pylint: disable=protected-access
  name = lambda i: None if i is None else backend.id_to_token(i)
  fast = transformers.PreTrainedTokenizerFast(
      tokenizer_object=backend, bos_token=name(tokenizer.bos_id),
      eos_token=name(tokenizer.eos_ids[0]), pad_token=name(tokenizer.pad_id))
  fast.save_pretrained(path)


def _trl_args(spec: dict, sizes: Sizes, output_dir: str):
  """GRPOConfig mirroring configs/grpo.py (see the module docstring)."""
  import trl  # pylint: disable=import-outside-toplevel
  micro = min(sizes.micro_batch, sizes.rows)
  return trl.GRPOConfig(
      output_dir=output_dir, report_to="none", save_strategy="no", logging_steps=10**6,
      use_cpu=True, bf16=False, fp16=False, seed=0, dataloader_num_workers=0,
      max_steps=sizes.warmup + sizes.steps,
      per_device_train_batch_size=micro, gradient_accumulation_steps=sizes.rows // micro,
      generation_batch_size=sizes.rows, num_generations=sizes.group_size,
      max_completion_length=sizes.new_tokens, temperature=0.7, top_p=1.0, top_k=0,
      generation_kwargs={} if spec["eos"] else {"min_new_tokens": sizes.new_tokens},
      beta=spec["beta"], num_iterations=1, epsilon=0.2, loss_type="dapo",  # dapo = token mean
      scale_rewards="group", learning_rate=1e-6, lr_scheduler_type="constant", warmup_steps=0,
      weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0,
      gradient_checkpointing=True, disable_dropout=True,
      model_init_kwargs={"dtype": "float32"})


def _trl_callback(acc: dict, records: list, torch):
  """TrainerCallback recording each optimizer step's time and its generation/reward share."""
  import transformers  # pylint: disable=import-outside-toplevel

  class StepTimer(transformers.TrainerCallback):
    t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
      acc.update(rollout=0.0, scoring=0.0, lengths=[], correct=[])
      self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
      step_s = time.perf_counter() - self.t0
      records.append(_breakdown(step_s, acc["rollout"], acc["scoring"],
                                accuracy=statistics.mean(acc["correct"]),
                                min_tokens=min(acc["lengths"]), max_tokens=max(acc["lengths"]),
                                useful_tokens=sum(acc["lengths"]),
                                torch_threads=torch.get_num_threads(),
                                checkpointing=_checkpointing_on(model)))
      _log(f"trl step {len(records) - 1}: {step_s:.1f}s (generate {acc['rollout']:.1f}s, "
           f"reward {acc['scoring']:.2f}s)")
  return StepTimer()


def _checkpointing_on(model) -> bool:
  """Whether the trainer's model recomputes activations (transformers 5 renamed the flag)."""
  for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
    if hasattr(type(model), name):
      return bool(getattr(model, name))
  return False


def run_trl(spec: dict) -> dict:
  """Warm-up + timed optimizer steps of TRL's GRPOTrainer on the exported checkpoint."""
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(spec["threads"])
  import datasets  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  import trl  # pylint: disable=import-outside-toplevel
  sizes, hf_dir = Sizes(**spec["sizes"]), spec["hf_dir"]
  with open(spec["prompts_file"], encoding="utf-8") as f:
    prompts = json.load(f)
  tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
  for p in prompts:   # TRL tokenises the rendered text itself: it must give our ids
    assert tokenizer(p["text"])["input_ids"] == p["ids"], "TRL would see different prompt ids"
  acc, records = {}, []

  def correctness(prompts, completions, answer, kind, completion_ids, **kwargs):
    del prompts, kwargs
    t0 = time.perf_counter()
    correct = [_is_correct(c, a, k) for c, a, k in zip(completions, answer, kind)]
    acc["scoring"] += time.perf_counter() - t0
    acc["correct"].extend(correct)
    acc["lengths"].extend(len(ids) for ids in completion_ids)
    return [1.0 if ok else 0.0 for ok in correct]

  dataset = datasets.Dataset.from_list(
      [{"prompt": p["text"], "answer": p["answer"], "kind": p["kind"]} for p in prompts])
  output_dir = tempfile.mkdtemp(prefix="bench_grpo_trl_")
  t0 = time.perf_counter()
  trainer = trl.GRPOTrainer(model=hf_dir, reward_funcs=correctness, train_dataset=dataset,
                            args=_trl_args(spec, sizes, output_dir), processing_class=tokenizer,
                            callbacks=[_trl_callback(acc, records, torch)])
  model = trainer.accelerator.unwrap_model(trainer.model)   # what TRL calls generate on
  model.generate = _timed_torch(model.generate, acc)
  setup_rss = _peak_rss_gib()
  _log(f"trl: setup {time.perf_counter() - t0:.1f}s, torch threads {torch.get_num_threads()}, "
       f"dtype {next(model.parameters()).dtype}")
  trainer.train()
  shutil.rmtree(output_dir, ignore_errors=True)
  out = _summarise(records[sizes.warmup:], records[:sizes.warmup])
  out["prompt_tokens"] = max(len(p["ids"]) for p in prompts)
  out["torch_threads"] = records[-1]["torch_threads"]
  out["setup_rss_gib"] = setup_rss
  out["checkpointing"] = all(r["checkpointing"] for r in records)
  out["backend"] = f"trl {trl.__version__}, torch {torch.__version__}"
  return out


def _timed_torch(fn, acc: dict):
  """`fn` adding its wall time to acc["rollout"] (CPU torch ops finish before returning)."""
  def wrapper(*args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    acc["rollout"] += time.perf_counter() - t0
    return out
  return wrapper


# ------------------------------------------------------------------------------ subprocesses

CHILDREN = {"ours": run_ours, "ours_before": run_ours, "trl": run_trl,
            "prepare": prepare_peer_inputs}


def child_main(spec: dict):
  """Entry of a benchmark subprocess: pin threads first, then run, then report one JSON line."""
  # Before jax/torch are imported: XLA sizes its thread pools from the affinity mask.
  os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:spec["threads"]]))
  out = CHILDREN[spec["role"]](spec)
  out.update(peak_rss_gib=_peak_rss_gib(), load_end=os.getloadavg()[0])
  print(RESULT_TAG + json.dumps(out), flush=True)


def spawn(spec: dict, log_path: str) -> dict | None:
  """Runs one child; echoes its progress lines, keeps the rest in `log_path`."""
  env = dict(os.environ, JAX_PLATFORMS=spec.get("platform", "cpu"),
             TOKENIZERS_PARALLELISM="false",
             **{v: str(spec["threads"]) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                  "OPENBLAS_NUM_THREADS")})
  cmd = [sys.executable, os.path.abspath(__file__), "--_child", json.dumps(spec)]
  result = None
  with open(log_path, "a", encoding="utf-8") as log, subprocess.Popen(
      cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
    log.write(f"\n===== {spec['role']} {spec.get('kl', '')} eos={spec.get('eos')} =====\n")
    try:
      for line in proc.stdout:
        log.write(line)
        if line.startswith(RESULT_TAG):
          result = json.loads(line[len(RESULT_TAG):])
        elif line.startswith(LOG_TAG):
          print("  " + line[len(LOG_TAG):], end="", flush=True)
    except KeyboardInterrupt:
      proc.kill()                        # our own child: don't leave it running
      raise
  if proc.returncode != 0 or result is None:
    with open(log_path, encoding="utf-8") as log:
      tail = log.readlines()[-30:]
    print(f"  {spec['role']} failed (exit {proc.returncode}); last lines of {log_path}:\n"
          + "".join("    " + l for l in tail), flush=True)
    return None
  return result


# ------------------------------------------------------------------------------ report


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    return platform.machine()


def machine_info(threads: int) -> str:
  """Time, CPUs, load average and versions (from package metadata: nothing heavy imported)."""
  load = os.getloadavg()
  versions = []
  for name in ("jax", "torch", "transformers", "trl"):
    try:
      versions.append(f"{name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
      versions.append(f"{name} missing")
  return (f"machine: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, "
          f"{os.cpu_count()} CPUs ({_cpu_model()}), load average {load[0]:.2f} / {load[1]:.2f}"
          f" / {load[2]:.2f} (1/5/15 min), {threads} thread(s) per system; {', '.join(versions)}")


def _per_1k(r: dict) -> float:
  """Step seconds per 1000 generated (useful) tokens."""
  return 1000.0 * r["step_s"] / max(r["useful_tokens"], 1)


def _row(name: str, kl: str, r: dict) -> str:
  return (f"| {name} | {kl} | {r['rollout_s']:.1f} | {r['scoring_s']:.2f} | {r['update_s']:.1f}"
          f" | {r['step_s']:.1f} | {r['useful_tokens']:.0f} | {_per_1k(r):.2f} |"
          f" {r['peak_rss_gib']:.2f} |")


def _ratio_row(name: str, kl: str, ours: dict, other: dict) -> str:
  """other / ours for every column: > 1 means ours is faster (smaller)."""
  ratio = lambda a, b: f"{a / b:.2f}x" if b > 0 else "-"
  col = lambda k: ratio(other[k], ours[k])
  return (f"| **{name}** | {kl} | {col('rollout_s')} | {col('scoring_s')} |"
          f" {col('update_s')} | **{col('step_s')}** | - | **{ratio(_per_1k(other), _per_1k(ours))}**"
          f" | {col('peak_rss_gib')} |")


def print_report(results: dict, sizes: Sizes, args, steal_pct: float, quick: bool):
  length_rule = (f"EOS allowed on both sides, at most {sizes.new_tokens} tokens; ours with "
                 f"{EOS_OURS}" if args.eos else
                 f"every row forced to exactly {sizes.new_tokens} tokens: ours SamplingParams "
                 f"without EOS ids, TRL min_new_tokens={sizes.new_tokens}")
  print(f"\nGRPO step, {sizes.prompts} prompts x {sizes.group_size} samples x "
        f"{sizes.new_tokens} new tokens ({length_rule}); ours_before = ours with {BEFORE}; "
        f"median of {sizes.steps} timed step(s) after {sizes.warmup} warm-up; "
        f"{args.threads} thread(s) each" + (" -- QUICK MODE, not a measurement" if quick else ""))
  print("\n| system | KL | rollout s | scoring s | update s | step s | generated tokens |"
        " s per 1k tokens | peak RSS GiB |")
  print("|---|---|---|---|---|---|---|---|---|")
  names = {"ours_before": "ours, first-race settings", "ours": "ours (jax)",
           "trl": "TRL GRPOTrainer"}
  for kl in args.kl:
    label = f"{kl} (beta {BETAS[kl]:g})"
    got = {s: results.get((s, kl)) for s in args.systems}
    for system, r in got.items():
      if r:
        print(_row(names[system], label, r))
    if got.get("ours") and got.get("trl"):
      print(_ratio_row("TRL/ours", label, got["ours"], got["trl"]))
    if got.get("ours") and got.get("ours_before"):
      print(_ratio_row("before/after", label, got["ours"], got["ours_before"]))
  print("\nnotes:")
  for (system, kl), r in results.items():
    tokens = r["useful_tokens"]
    warm = "" if r["warmup_s"] is None else f"warm-up step {r['warmup_s']:.1f}s, "
    if system.startswith("ours"):
      extra = (f", jitted update alone {r['jit_update_s']:.1f}s, compile (lowering + XLA) "
               f"{r['compile_s']:.1f}s in warm-up / {r['timed_compile_s']:.1f}s in timed steps")
    else:
      extra = (f", torch threads {r['torch_threads']}, gradient checkpointing "
               f"{'on' if r['checkpointing'] else 'OFF'}")
    extra += f", peak RSS after set-up {r['setup_rss_gib']:.2f} GiB"
    print(f"- {system} KL {kl}: {warm}steps {r['steps_s']} s, generation "
          f"{tokens / r['rollout_s']:.1f} tok/s, tokens/row {r['min_tokens']}-{r['max_tokens']},"
          f" prompt {r['prompt_tokens']} tokens, accuracy {r['accuracy']:.2f}{extra}; "
          f"{r['backend']}; 1-min load at end {r['load_end']:.2f}")
  if sizes.warmup == 0:
    print("- no warm-up step: ours' timed step includes compilation (quick mode)")
  if len(results) < len(args.kl) * len(args.systems):
    print("- INCOMPLETE: some runs failed or were interrupted (see above)")
  print(f"- CPU steal time during the run: {steal_pct:.1f}% of all jiffies "
        f"(high values: noisy neighbours, rerun on a quiet machine)")
  print(f"- {machine_info(args.threads)}")


# ------------------------------------------------------------------------------ main


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  parser.add_argument("--steps", type=int, default=None,
                      help="timed steps, median reported (default 2; 1 with --quick)")
  parser.add_argument("--threads", type=int, default=2, help="cores/threads for each system")
  parser.add_argument("--platform", default="cpu",
                      help="JAX_PLATFORMS of our children (cpu, cuda, tpu); TRL always runs on CPU")
  parser.add_argument("--systems", default="ours_before,ours,trl",
                      help="comma list of ours_before, ours, trl")
  parser.add_argument("--eos", action="store_true",
                      help="realistic lengths: EOS allowed on both sides (see the docstring)")
  parser.add_argument("--kl", default="off,on", help="comma list of off (beta 0), on (0.001)")
  parser.add_argument("--max_prompt_tokens", type=int, default=0,
                      help="our prompt pad length; 0 = the longest prompt, as TRL pads")
  parser.add_argument("--quick", action="store_true",
                      help="2 prompts x 2 samples x 8 tokens, 1 step, no warm-up (debugging)")
  parser.add_argument("--cache_dir", default=os.path.join(
      os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "concise_jax",
      "bench_grpo_step"), help="holds the exported HF checkpoint and the logs")
  parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.systems = [s for s in args.systems.split(",") if s]
  args.kl = [k for k in args.kl.split(",") if k]
  bad = [s for s in args.systems if s not in ("ours_before", "ours", "trl")] + [
      k for k in args.kl if k not in BETAS]
  if bad:
    parser.error(f"unknown --systems/--kl values {bad}")
  return args


def main():
  args = parse_args()
  if args._child is not None:  # pylint: disable=protected-access
    child_main(json.loads(args._child))  # pylint: disable=protected-access
    return
  sizes = QUICK if args.quick else Sizes()
  if args.steps is not None:
    sizes = dataclasses.replace(sizes, steps=args.steps)
  peers_ok = all(importlib.util.find_spec(m) for m in ("trl", "torch", "transformers",
                                                       "datasets"))
  if "trl" in args.systems and not peers_ok:
    print("trl/torch not installed (pip install -e '.[peers]'): running ours only")
    args.systems = [s for s in args.systems if s != "trl"]
  os.makedirs(args.cache_dir, exist_ok=True)
  log_path = os.path.join(args.cache_dir, "bench_grpo_step.log")
  print(machine_info(args.threads), flush=True)
  print(f"child output log: {log_path}", flush=True)
  base = {"sizes": dataclasses.asdict(sizes), "threads": args.threads, "eos": args.eos,
          "platform": args.platform,
          "max_prompt_tokens": args.max_prompt_tokens,
          "hf_dir": os.path.join(args.cache_dir, f"{MODEL}-hf"),
          "prompts_file": os.path.join(args.cache_dir, "prompts.json")}
  steal0, total0 = _steal_jiffies()
  if "trl" in args.systems and spawn({**base, "role": "prepare"}, log_path) is None:
    args.systems = [s for s in args.systems if s != "trl"]
  results = {}
  try:
    for kl in args.kl:                   # systems alternate, so load drift hits both alike
      for system in args.systems:
        print(f"{system}, KL {kl}:", flush=True)
        out = spawn({**base, "role": system, "kl": kl, "beta": BETAS[kl]}, log_path)
        if out is not None:
          results[(system, kl)] = out
  except KeyboardInterrupt:             # Ctrl-C / kill -INT: report what finished
    print("interrupted: reporting the finished runs only", flush=True)
  steal1, total1 = _steal_jiffies()
  steal_pct = 100.0 * (steal1 - steal0) / max(total1 - total0, 1)
  print_report(results, sizes, args, steal_pct, args.quick)


if __name__ == "__main__":
  main()
