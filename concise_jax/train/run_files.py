"""The workdir's plain files besides checkpoints: `config.json`, `platform.json` and
`metrics.jsonl`, atomically.

`config.json` describes the run that is actually training, and `platform.json` the hardware it
trains on (results from a GPU and a CPU differ in the last bits, so a study records which ran
where); both are written only once the config validated, the checkpoint restored and the data loaded. `metrics.jsonl` gets one row per
step: a resumed run first drops the rows a killed predecessor logged past the restored step, so
no step appears twice. Both are rewritten through a temporary file and `os.replace`, so a kill
mid-write leaves the old file, never half a file. Only process 0 writes.
"""
import json
import os

import jax

METRICS = "metrics.jsonl"
CONFIG = "config.json"
PLATFORM = "platform.json"


def _atomic_write(path: str, text: str) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def platform() -> dict:
  """Where this process trains: backend, device kind and count, processes, jax version."""
  return {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
          "devices": jax.device_count(), "processes": jax.process_count(),
          "jax": jax.__version__}


def write_config(workdir: str, config) -> None:
  """Saves the resolved config as `workdir/config.json` (sorted keys, indented) and the
  platform as `workdir/platform.json` (a resumed run records the machine it resumed on)."""
  if jax.process_index() == 0:
    _atomic_write(os.path.join(workdir, CONFIG),
                  json.dumps(json.loads(config.to_json()), indent=2, sort_keys=True))
    _atomic_write(os.path.join(workdir, PLATFORM), json.dumps(platform(), sort_keys=True))


def trim_metrics(workdir: str, step: int) -> int:
  """Drops `metrics.jsonl` rows a resumed run will log again; returns how many were dropped.

  Resuming from `step` > 0 keeps the rows of steps <= `step` (step 0 is the evaluation before
  training); a fresh start (`step` 0) logs everything again, so every row goes. A torn last
  line (a kill mid-write) is dropped too.
  """
  path = os.path.join(workdir, METRICS)
  if jax.process_index() != 0 or not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      row_step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
      continue
    if step > 0 and row_step <= step:
      kept.append(line if line.endswith("\n") else line + "\n")
  if len(kept) != len(lines):
    _atomic_write(path, "".join(kept))
  return len(lines) - len(kept)


def read_metrics(workdir: str) -> list[dict]:
  """The complete rows of `workdir/metrics.jsonl`, safe to call while a trainer appends.

  The file is read in one go and only text up to its last newline is parsed: iterating lines
  of a growing file can return a row's head at a momentary end of file and its tail as a
  "line" of its own once the writer finishes it.
  """
  path = os.path.join(workdir, METRICS)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    text = f.read()
  complete = text[:text.rfind("\n") + 1]
  return [json.loads(line) for line in complete.splitlines() if line.strip()]
