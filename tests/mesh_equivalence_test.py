"""Training on any 8-device mesh equals training on one device: rollout tokens, every logged
metric and the final parameters; a checkpoint written under one mesh resumes under another.

Two configs: `grpo_lambda` with full fine-tuning and a KL term (the donated-state-vs-reference
case that used to crash on pure data parallelism) and the LoRA `quickstart`. Each run compiles
its own update and sampler, hence the integration marker.
"""
import json
import os

import jax
import numpy as np
import pytest

from concise_jax import distributed, train
from concise_jax.train import rollout_step
from configs import grpo_lambda, quickstart

pytestmark = pytest.mark.integration

MESHES = [(8, 1, 1), (1, 8, 1), (1, 1, 8), (2, 2, 2), (4, 2, 1)]
STEPS = 2
_ROLLOUT_BATCH = rollout_step.rollout_batch


def _config(name: str, mesh):
  if name == "grpo_lambda_kl":
    config = grpo_lambda.get_config("model=tiny,runlocal")
    config.kl.coef = 0.05
  else:
    config = quickstart.get_config("model=tiny,runlocal")
  config.train.steps = STEPS
  config.train.ckpt_every = 1
  config.eval.every = 0
  config.rollout.prompts_per_step = 4      # 4 prompts x 4 samples = 16 rows: divides 8
  config.mesh.shape = mesh
  return config


def _run(config, workdir, monkeypatch, **kwargs):
  """(rollout tokens of every sampler call, metrics.jsonl rows, final params on the host)."""
  tokens = []

  def recording(*args, **kw):
    batch, texts, stats = _ROLLOUT_BATCH(*args, **kw)
    tokens.append(np.asarray(batch.tokens_bt))
    return batch, texts, stats

  monkeypatch.setattr(rollout_step, "rollout_batch", recording)
  result = train.run(config, str(workdir), **kwargs)
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  rows = [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]
  return tokens, rows, distributed.fetch(result.state.params)


_REFERENCE = {}


def _reference(name, tmp_path_factory, monkeypatch):
  if name not in _REFERENCE:
    _REFERENCE[name] = _run(_config(name, (1, 1, 1)), tmp_path_factory.mktemp(f"ref_{name}"),
                            monkeypatch)
  return _REFERENCE[name]


def _assert_rows_close(rows_a, rows_b):
  assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
  for a, b in zip(rows_a, rows_b):
    assert a.keys() == b.keys()
    for key in a:
      if a[key] is None or b[key] is None:
        assert a[key] == b[key], key
      else:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _assert_params_close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(y, x, rtol=0, atol=1e-5), a, b)


@pytest.mark.parametrize("mesh", MESHES, ids=lambda m: "x".join(map(str, m)))
@pytest.mark.parametrize("name", ["grpo_lambda_kl", "quickstart_lora"])
def test_mesh_run_equals_one_device_run(name, mesh, tmp_path, tmp_path_factory, monkeypatch):
  ref_tokens, ref_rows, ref_params = _reference(name, tmp_path_factory, monkeypatch)
  tokens, rows, params = _run(_config(name, mesh), tmp_path, monkeypatch)
  assert len(tokens) == len(ref_tokens) == STEPS
  for t, r in zip(tokens, ref_tokens):
    np.testing.assert_array_equal(t, r)
  _assert_rows_close(ref_rows, rows)
  # Something was learned (a step whose groups all tie has a zero gradient; not every step).
  assert max(r["optim/grad_norm"] for r in ref_rows) > 0
  _assert_params_close(ref_params, params)


def test_checkpoint_from_one_mesh_resumes_on_another(tmp_path, tmp_path_factory, monkeypatch):
  ref_tokens, ref_rows, ref_params = _reference("grpo_lambda_kl", tmp_path_factory, monkeypatch)
  first = _run(_config("grpo_lambda_kl", (2, 2, 2)), tmp_path, monkeypatch, stop_at_step=1)
  second = _run(_config("grpo_lambda_kl", (8, 1, 1)), tmp_path, monkeypatch)
  for t, r in zip(first[0] + second[0], ref_tokens):
    np.testing.assert_array_equal(t, r)
  _assert_rows_close(ref_rows, second[1])
  _assert_params_close(ref_params, second[2])


def test_resharded_rollout_params_give_the_same_run(tmp_path, tmp_path_factory, monkeypatch):
  """`rollout.reshard_params` changes only where the decode's weights live."""
  ref_tokens, ref_rows, ref_params = _reference("grpo_lambda_kl", tmp_path_factory, monkeypatch)
  config = _config("grpo_lambda_kl", (2, 4, 1))
  config.rollout.reshard_params = True
  tokens, rows, params = _run(config, tmp_path, monkeypatch)
  for t, r in zip(tokens, ref_tokens):
    np.testing.assert_array_equal(t, r)
  _assert_rows_close(ref_rows, rows)
  _assert_params_close(ref_params, params)
