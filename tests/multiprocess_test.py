"""Two local processes x 4 simulated CPU devices (gloo collectives) behave as one process with
8 devices: training on a (2, 2, 2) mesh, stopped and resumed, ends with the same metrics and
parameters; `concise_jax.eval` writes the same results."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from concise_jax import distributed, train
from concise_jax.train import checkpoint
from tests.helpers import train_worker

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch_pair(args_for, timeout=900):
  """Runs two processes (args_for(process_id) -> argv) and returns their outputs."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO}
  procs = [subprocess.Popen(args_for(i), cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=timeout)[0])
  finally:
    for p in procs:
      p.kill()
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  return outs


def _train_pair(workdir, stop_at):
  address = f"127.0.0.1:{_free_port()}"
  return _launch_pair(lambda i: [sys.executable, "-m", "tests.helpers.train_worker", address,
                                 "2", str(i), str(workdir), "2,2,2", str(stop_at)])


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def test_two_processes_train_stop_resume_equal_one_process(tmp_path):
  two = tmp_path / "two"
  outs = _train_pair(two, stop_at=2)
  assert "step 2" in outs[0] and "step 2" in outs[1]
  assert not os.path.exists(os.path.join(two, "metrics.jsonl.1"))
  outs = _train_pair(two, stop_at=3)
  assert "step 3" in outs[0]

  one = tmp_path / "one"
  result = train.run(train_worker.config_for((2, 2, 2)), str(one))
  rows_one, rows_two = _rows(one), _rows(two)
  assert [r["step"] for r in rows_two] == [1, 2, 3]
  for a, b in zip(rows_one, rows_two):
    for key in a:
      if a[key] is None:
        assert b[key] is None, key
      else:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
  manager = checkpoint.make_manager(str(two))
  try:
    restored, _ = checkpoint.restore(manager, result.state, 3)
  finally:
    manager.close()
  jax.tree.map(lambda x, y: np.testing.assert_allclose(y, x, rtol=0, atol=1e-5),
               distributed.fetch(result.state.params), distributed.fetch(restored.params))


def _eval_args(out_dir, extra=()):
  return [sys.executable, "-m", "concise_jax.eval", "--checkpoint=tiny",
          "--data=task:add_1digit", "--n=6", "--k=2", "--max_new_tokens=12", "--batch_size=8",
          "--noprogress", "--mesh_shape=2,2,2", f"--out_dir={out_dir}", *extra]


def _results(out_dir):
  with open(os.path.join(out_dir, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  results.pop("config", None)
  for dataset in results.get("datasets", {}).values():
    dataset.pop("throughput", None)
  return results


def test_eval_across_two_processes_equals_one_process(tmp_path):
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu"}
  one = subprocess.run(_eval_args(tmp_path / "one"), cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600, check=False)
  assert one.returncode == 0, one.stderr[-3000:]
  address = f"127.0.0.1:{_free_port()}"
  _launch_pair(lambda i: _eval_args(tmp_path / "two", (
      f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}")))
  assert _results(tmp_path / "one") == _results(tmp_path / "two")
  with open(tmp_path / "one" / "completions.jsonl", encoding="utf-8") as f:
    one_lines = f.read()
  with open(tmp_path / "two" / "completions.jsonl", encoding="utf-8") as f:
    assert f.read() == one_lines
