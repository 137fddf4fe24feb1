"""End-to-end runs of `train.run` on the tiny model: smoke, bit-exact resume, NaN halt.

All tests share one config shape, so the sampler and the update compile once per session.
"""
import json
import os

import jax
import numpy as np
import pytest

from concise_jax import train
from concise_jax.train import checkpoint
from configs import grpo_lambda

pytestmark = pytest.mark.integration   # 10-step training runs: end to end

STEPS = 10
EPOCH_STEPS = 8   # 32 prompts / 4 per step: step 8 ends the first epoch exactly
GOOD_STEPS = 2    # the NaN test needs one good checkpoint to fall back to, not an epoch


def tiny_config(**train_overrides):
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.train.steps = STEPS
  config.train.ckpt_every = EPOCH_STEPS
  config.eval.every = 5
  config.eval.num_prompts = 4
  # Sampled eval with the training shapes and settings: reuses the compiled sampler.
  config.eval.temperature = config.rollout.temperature
  config.eval.samples_per_prompt = config.rollout.group_size
  for k, v in train_overrides.items():
    config.train[k] = v
  return config


def _host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


def _restore(workdir, step, like):
  manager = checkpoint.make_manager(str(workdir))
  try:
    state, meta = checkpoint.restore(manager, like, step)
  finally:
    manager.close()
  return _host(state), meta


def _ckpt_steps(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, "ckpt")))


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  # Wall-clock figures legitimately differ between runs; everything else must not.
  return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def _assert_trees_equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  result = train.run(tiny_config(), str(workdir))
  return workdir, result


def test_smoke_run_writes_metrics_checkpoints_and_events(straight):
  workdir, result = straight
  assert result.step == STEPS and not result.halted
  rows = _rows(workdir)
  assert [r["step"] for r in rows] == list(range(0, STEPS + 1))   # 0: evaluation before training
  assert "eval/rollout/accuracy" in rows[0]
  rows = rows[1:]
  for key in ("rollout/accuracy", "len/all/mean", "len/all/p90", "rollout/truncation_rate",
              "policy/entropy", "policy/clip_frac", "loss/kl", "optim/grad_norm",
              "loss/total", "reward/mean", "reward/grpo_lambda/selected_frac"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert "eval/rollout/accuracy" in rows[4] and "eval/rollout/accuracy" in rows[9]
  # The training forward reproduces the sampler's log-probs (same temperature, no top-p).
  assert max(r["train/sampler_logp_gap"] for r in rows) < 1e-4
  assert _ckpt_steps(workdir) == [EPOCH_STEPS, STEPS]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "tb"))
  assert int(result.state.step) == STEPS


def test_resume_reproduces_straight_run_bit_exactly(straight, tmp_path):
  """Interrupted exactly at the epoch boundary, restored, continued: identical to one go."""
  workdir, result = straight
  first = train.run(tiny_config(), str(tmp_path), stop_at_step=EPOCH_STEPS)
  assert first.step == EPOCH_STEPS and _ckpt_steps(tmp_path) == [EPOCH_STEPS]
  resumed = train.run(tiny_config(), str(tmp_path))
  assert resumed.step == STEPS
  like = result.state
  state_a, meta_a = _restore(workdir, STEPS, like)
  state_b, meta_b = _restore(tmp_path, STEPS, like)
  _assert_trees_equal(state_a, state_b)          # params, opt state, reward state, rng, step
  assert meta_a["data"] == meta_b["data"]        # data position
  mid_a, mid_meta_a = _restore(workdir, EPOCH_STEPS, like)
  mid_b, mid_meta_b = _restore(tmp_path, EPOCH_STEPS, like)
  _assert_trees_equal(mid_a, mid_b)
  assert mid_meta_a["data"] == mid_meta_b["data"]
  assert _rows(workdir) == _rows(tmp_path)       # every logged metric, eval included


def test_nan_halts_and_keeps_last_good_checkpoint(straight, tmp_path, capsys):
  _, reference = straight
  # ckpt_every is not read by the update: the same compiled program as the straight run.
  first = train.run(tiny_config(ckpt_every=GOOD_STEPS), str(tmp_path), stop_at_step=GOOD_STEPS)
  good, _ = _restore(tmp_path, GOOD_STEPS, reference.state)
  bad = tiny_config(ckpt_every=GOOD_STEPS)
  bad.reward.name = "correctness"                # NaN rewards → NaN advantages and loss
  bad.reward.correctness.correct_reward = float("nan")
  bad.reward.correctness.wrong_reward = float("nan")
  result = train.run(bad, str(tmp_path))
  assert result.halted and result.step == GOOD_STEPS + 1
  assert _ckpt_steps(tmp_path) == [GOOD_STEPS]
  after, _ = _restore(tmp_path, GOOD_STEPS, reference.state)
  _assert_trees_equal(good, after)
  # The bad update was not applied to the state in memory either.
  _assert_trees_equal(_host(first.state.params), _host(result.state.params))
  assert _rows(tmp_path)[-1]["train/nonfinite"] >= 1
  assert f"last good (verified) checkpoint: step {GOOD_STEPS}" in capsys.readouterr().out
