r"""Sweeps: one base config, named runs (override sets) × seeds, each run in its own workdir.

    python -m concise_jax.sweep --sweep=experiments/sweeps/smoke.py --root=runs/sweeps \
        [--results=experiments/results] [--executor=sequential|local|slurm] [--only=dler-s0]

A sweep file is an `ml_collections` config file whose `get_config()` returns:

    study    name of the study: results go to <results>/<study>/, workdirs to <root>/<study>/
    base     the `--config` of every run, e.g. "configs/grpo.py:model=smollm2"
    common   overrides applied to every run, as on the command line without `--config.`:
             ("train.steps=60", "eval.every=10")
    runs     {run name: (override, ...)}
    seeds    the seeds each run is repeated with (`--config.seed`)
    slurm    (optional) submitit Slurm parameters, e.g. {"timeout_min": 600, "partition": "cpu"}

Each (run, seed) is `python -m concise_jax.main` with `--config.<key>=<value>` overrides, so a
sweep validates, resolves and records its config exactly as a hand-launched run does. A run
whose summary `<results>/<study>/<run>-s<seed>.json` exists is finished and skipped; any other
run is (re)launched on its workdir, which resumes from the newest checkpoint. Summaries are
small (final held-out metrics, per-step curves), so a study can be completed over several
sittings and committed. Runs execute one after another here (`--parallel=N`: N at a time, e.g.
on one GPU); `--executor=slurm` submits them as a Slurm job array through submitit (its local
executor runs the same path in the tests).
"""
import concurrent.futures
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from absl import app, flags

# Per-step curves kept in a summary (whichever a run logs).
CURVE_KEYS = ("reward/mean", "rollout/accuracy", "rollout/truncation_rate", "len/all/mean",
              "len/correct/mean", "loss/kl", "policy/entropy", "optim/grad_norm",
              "eval/greedy/accuracy", "eval/greedy/tokens/mean", "eval/greedy/truncation_rate",
              "eval/sampled/mean_at_k", "eval/sampled/tokens/mean")
# Final held-out metrics kept (from the last evaluated step).
FINAL_PREFIXES = ("eval/greedy/", "eval/sampled/")


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One (run, seed) of a study: what to launch and where its files go."""
  study: str
  name: str
  seed: int
  base: str
  overrides: tuple[str, ...]      # "key=value", as `--config.key=value`

  @property
  def run_id(self) -> str:
    return f"{self.name}-s{self.seed}"

  def command(self, workdir: str) -> list[str]:
    """The `concise_jax.main` command line of this run."""
    return [sys.executable, "-m", "concise_jax.main", f"--config={self.base}",
            f"--config.seed={self.seed}", *(f"--config.{o}" for o in self.overrides),
            f"--workdir={workdir}"]


def load_sweep(path: str) -> tuple[list[RunSpec], dict]:
  """(the runs of a sweep file — by run name, seeds inner; `ml_collections` keeps keys sorted —
  and its submitit Slurm parameters)."""
  spec = importlib.util.spec_from_file_location("_sweep", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  s = module.get_config()
  missing = [k for k in ("study", "base", "runs", "seeds") if k not in s]
  if missing:
    raise KeyError(f"sweep file {path} lacks {missing}; needs study, base, runs, seeds")
  common = tuple(s.get("common", ()))
  out = []
  for name, overrides in dict(s.runs).items():
    merged = common + tuple(overrides)
    bad = [o for o in merged if "=" not in o or o.startswith("seed=")]
    if bad:
      raise ValueError(f"sweep {path}, run {name!r}: overrides must be 'key=value' (seeds go in "
                       f"`seeds`): {bad}")
    for seed in s.seeds:
      out.append(RunSpec(s.study, name, int(seed), s.base, merged))
  return out, dict(s.get("slurm", {}))


def summary_path(results: str, spec: RunSpec) -> str:
  return os.path.join(results, spec.study, f"{spec.run_id}.json")


def workdir_of(root: str, spec: RunSpec) -> str:
  return os.path.join(root, spec.study, spec.run_id)


def _rows(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.endswith("\n")]


def _clean(value):
  """JSON-safe floats: NaN (e.g. the length of correct answers when none is) becomes None."""
  return None if isinstance(value, float) and not math.isfinite(value) else value


def summarize(spec: RunSpec, workdir: str, wall_s: float) -> dict:
  """The committed record of a finished run: final held-out metrics, curves, provenance (the
  overrides, wall time and the platform it trained on)."""
  rows = _rows(workdir)
  steps = [r["step"] for r in rows]
  curves = {k: [_clean(r.get(k)) for r in rows] for k in CURVE_KEYS if any(k in r for r in rows)}
  evaluated = [r for r in rows if any(k.startswith(FINAL_PREFIXES) for k in r)]
  final = {k: _clean(v) for k, v in (evaluated[-1] if evaluated else {}).items()
           if k.startswith(FINAL_PREFIXES) and "/reflections/" not in k}
  acc, n = final.get("eval/greedy/accuracy"), final.get("eval/greedy/num_completions")
  if acc is not None and n:
    final["eval/greedy/accuracy_stderr"] = math.sqrt(acc * (1 - acc) / n)
  before = {}
  if os.path.exists(os.path.join(workdir, "eval_step0.json")):
    with open(os.path.join(workdir, "eval_step0.json"), encoding="utf-8") as f:
      before = {k: _clean(v) for k, v in json.load(f).items()
                if k.startswith(FINAL_PREFIXES) and "/reflections/" not in k}
  platform = {}
  if os.path.exists(os.path.join(workdir, "platform.json")):
    with open(os.path.join(workdir, "platform.json"), encoding="utf-8") as f:
      platform = json.load(f)
  return {"study": spec.study, "run": spec.name, "seed": spec.seed, "base": spec.base,
          "overrides": list(spec.overrides), "steps": steps[-1] if steps else 0,
          "final": final, "eval_step0": before, "curves": {"step": steps, **curves},
          "wall_s": round(wall_s, 1), "platform": platform}


def run_one(spec: RunSpec, root: str, results: str) -> str:
  """Runs (or resumes) one run to the end and writes its summary; skips a finished one.

  Returns "skipped" or "ran". Raises RuntimeError naming the run and its log on failure.
  """
  out = summary_path(results, spec)
  if os.path.exists(out):
    return "skipped"
  workdir = workdir_of(root, spec)
  os.makedirs(workdir, exist_ok=True)
  log = os.path.join(workdir, "sweep.log")
  started = time.time()
  with open(log, "a", encoding="utf-8") as f:
    code = subprocess.run(spec.command(workdir), stdout=f, stderr=subprocess.STDOUT,
                          check=False).returncode
  if code != 0:
    raise RuntimeError(f"run {spec.study}/{spec.run_id} exited {code}; log: {log}")
  summary = summarize(spec, workdir, time.time() - started)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  tmp = out + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1, sort_keys=True)
  os.replace(tmp, out)       # a summary exists only for a run that finished
  return "ran"


def run_sweep(specs: Sequence[RunSpec], root: str, results: str, *,
              executor: str = "sequential", slurm: dict | None = None,
              only: Sequence[str] = (), max_runs: int | None = None,
              parallel: int = 1) -> dict[str, str]:
  """Runs the pending runs of `specs`; returns {run_id: "skipped" | "ran"}.

  executor: "sequential" (here, `parallel` at a time), "local" (submitit's local executor: the
  cluster path, on this machine) or "slurm" (a submitit Slurm job array).
  max_runs: stop after this many runs were launched (a sitting of a long study).
  parallel: runs at a time with the sequential executor, in the sweep's order.
  """
  chosen = [s for s in specs if not only or s.run_id in only or s.name in only]
  status = {s.run_id: "skipped" for s in chosen if os.path.exists(summary_path(results, s))}
  pending = [s for s in chosen if s.run_id not in status][:max_runs]
  if executor == "sequential":
    failed = threading.Event()
    def launch(s):
      if failed.is_set():        # a failed run stops the sitting: start nothing more
        return None
      print(f"[sweep] {s.study}/{s.run_id}: running", flush=True)
      try:
        return run_one(s, root, results)
      except BaseException:
        failed.set()
        raise
    # Each run is its own process; threads only wait on them. One accelerator holds many of
    # these small runs at once (the H200 study ran 16), which a one-at-a-time loop leaves idle.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
      futures = [pool.submit(launch, s) for s in pending]
      errors = []
      for s, future in zip(pending, futures):
        try:
          outcome = future.result()
        except Exception as e:  # pylint: disable=broad-except  # re-raised below, first one
          errors.append(e)
          continue
        if outcome is not None:
          status[s.run_id] = outcome
    if errors:
      raise errors[0]
    return status
  import submitit  # pylint: disable=import-outside-toplevel  # cluster path only
  folder = os.path.join(root, "_submitit")
  if executor == "local":
    ex = submitit.LocalExecutor(folder=folder)
    ex.update_parameters(timeout_min=(slurm or {}).get("timeout_min", 600))
  elif executor == "slurm":
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(**(slurm or {}))
  else:
    raise ValueError(f"executor {executor!r}; valid choices: sequential, local, slurm")
  jobs = ex.map_array(run_one, pending, [root] * len(pending), [results] * len(pending))
  for s, job in zip(pending, jobs):
    status[s.run_id] = job.result()
  return status


_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (experiments/sweeps/*.py).")
_ROOT = flags.DEFINE_string("root", "runs/sweeps", "Workdirs go to <root>/<study>/<run>.")
_RESULTS = flags.DEFINE_string("results", "experiments/results", "Summaries: <results>/<study>/.")
_EXECUTOR = flags.DEFINE_enum("executor", "sequential", ["sequential", "local", "slurm"],
                              "Where runs execute.")
_ONLY = flags.DEFINE_list("only", [], "Run ids (name-sSEED) or names to run; default all.")
_MAX_RUNS = flags.DEFINE_integer("max_runs", None, "Stop after launching this many runs.")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at a time (sequential executor): one on a "
                                 "small CPU, ~16 on one GPU.", lower_bound=1)


def main(argv):
  del argv
  specs, slurm = load_sweep(_SWEEP.value)
  status = run_sweep(specs, _ROOT.value, _RESULTS.value, executor=_EXECUTOR.value,
                     slurm=slurm, only=_ONLY.value, max_runs=_MAX_RUNS.value,
                     parallel=_PARALLEL.value)
  done = sum(os.path.exists(summary_path(_RESULTS.value, s)) for s in specs)
  print(f"[sweep] {len(status)} runs: {sum(v == 'ran' for v in status.values())} ran, "
        f"{sum(v == 'skipped' for v in status.values())} skipped; study {done}/{len(specs)} "
        "finished")


if __name__ == "__main__":
  flags.mark_flag_as_required("sweep")
  app.run(main)
