"""Prints the mesh-equivalence table: each 8-device mesh against one device, tiny model.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python experiments/mesh_equivalence.py

For `grpo_lambda` (full fine-tuning, KL 0.05) and the LoRA `quickstart` config, 2 training
steps on each mesh: whether every rollout token matched, and the largest difference of any
logged metric and of any parameter from the one-device run. tests/mesh_equivalence_test.py
asserts the same at 1e-5.
"""
import json
import os
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from concise_jax import distributed, train  # pylint: disable=wrong-import-position
from concise_jax.train import rollout_step  # pylint: disable=wrong-import-position
from configs import grpo_lambda, quickstart  # pylint: disable=wrong-import-position

MESHES = [(1, 1, 1), (8, 1, 1), (1, 8, 1), (1, 1, 8), (2, 2, 2), (4, 2, 1)]


def config_for(name, mesh):
  if name == "grpo_lambda+KL":
    config = grpo_lambda.get_config("model=tiny,runlocal")
    config.kl.coef = 0.05
  else:
    config = quickstart.get_config("model=tiny,runlocal")
  config.train.steps, config.train.ckpt_every, config.eval.every = 2, 2, 0
  config.mesh.shape = mesh
  return config


def run(config):
  tokens, original = [], rollout_step.rollout_batch

  def recording(*args, **kwargs):
    out = original(*args, **kwargs)
    tokens.append(np.asarray(out[0].tokens_bt))
    return out

  rollout_step.rollout_batch = recording
  try:
    with tempfile.TemporaryDirectory() as workdir:
      result = train.run(config, workdir)
      with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
  finally:
    rollout_step.rollout_batch = original
  return tokens, rows, distributed.fetch(result.state.params)


def main():
  print("| config | mesh | rollout tokens equal | max |Δ metric| | max |Δ param| |")
  print("|---|---|---|---|---|")
  for name in ("grpo_lambda+KL", "quickstart (LoRA)"):
    ref = None
    for mesh in MESHES:
      tokens, rows, params = run(config_for(name, mesh))
      if ref is None:
        ref = (tokens, rows, params)
        continue
      same = all(np.array_equal(a, b) for a, b in zip(tokens, ref[0]))
      dm = max(abs(a[k] - b[k]) for a, b in zip(rows, ref[1]) for k in a
               if not k.startswith("perf/") and a[k] is not None and b[k] is not None)
      dp = max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))),
                                            params, ref[2])))
      print(f"| {name} | {mesh} | {same} | {dm:.2e} | {dp:.2e} |", flush=True)


if __name__ == "__main__":
  main()
