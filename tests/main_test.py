"""The entry point: bad keys and names fail before the workdir exists; good configs train."""
import json
import os
import subprocess
import sys

import pytest

from concise_jax import main, options
from concise_jax.train import checkpoint
from configs import grpo_lambda

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "concise_jax.main", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120, check=False)


def test_unknown_override_key_fails_listing_valid_keys(tmp_path):
  workdir = tmp_path / "run"
  proc = _cli("--config=configs/grpo_lambda.py:model=tiny,runlocal", "--config.optim.lrr=1",
              f"--workdir={workdir}")
  assert proc.returncode == 2
  assert "unknown config key 'config.optim.lrr'" in proc.stderr
  assert "valid choices: b1, b2, clip_norm, eps, length_buckets, lr, micro_batch" in proc.stderr
  assert not workdir.exists()


def test_unknown_method_name_fails_before_the_workdir_exists(tmp_path):
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.advantage.name = "rloo_plus"
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="unknown advantage 'rloo_plus'; valid choices: decs_position, dr_grpo"):
    main.launch(config, str(workdir))
  assert not workdir.exists()


def test_launch_validates_prunes_then_trains_writing_nothing_itself(tmp_path, monkeypatch):
  """`launch` = validate + prune to the selected components + `train.run` (stubbed: the
  trainer writes config.json only after its data and checkpoint loaded, see
  fault_injection_test)."""
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.optim.lr = 2e-6
  seen = {}
  from concise_jax import train  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(train, "run", lambda c, w: seen.setdefault("args", (c, w)))
  main.launch(config, str(tmp_path / "run"))
  run_config, workdir = seen["args"]
  assert workdir == str(tmp_path / "run") and not (tmp_path / "run").exists()
  assert run_config == options.resolve(config) and run_config.optim.lr == 2e-6
  assert sorted(run_config.reward.keys()) == ["grpo_lambda", "name"]
  assert sorted(run_config.loss.keys()) == ["entropy_coef", "mask_truncated", "name", "ppo_clip"]
  assert "dler" in config.reward           # the caller's config is not changed


def test_pruned_config_compares_equal_with_itself_on_resume():
  config = options.resolve(grpo_lambda.get_config("model=tiny,runlocal"))
  saved = json.loads(config.to_json())
  assert checkpoint.config_changes(saved, json.loads(options.resolve(config).to_json())) == []
  unpruned = json.loads(grpo_lambda.get_config("model=tiny,runlocal").to_json())
  assert options.count_leaves(saved) < options.count_leaves(unpruned) / 2.5   # measured: 264 → 93
  assert checkpoint.config_changes(options.resolve_dict(unpruned), saved) == []


@pytest.mark.parametrize("flag, message", [
    ("--config.reward.dler.max_len=abc", "error: config.reward.dler.max_len='abc': must be int "
                                         "or None"),
    ("--config.reward.name=nope", "config.reward.name: unknown reward 'nope'; valid choices: "
                                  "arlcp, ceeh, correctness,"),
    ("--config.loss.ppo_clip.eps_low=wide", "error: config.loss.ppo_clip.eps_low='wide': must "
                                            "be float"),
])
def test_bad_option_fails_fast_naming_key_type_and_value(tmp_path, flag, message):
  workdir = tmp_path / "run"
  proc = _cli("--config=configs/grpo.py:model=tiny,runlocal", flag, f"--workdir={workdir}")
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
  assert not workdir.exists()
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_tiny_run_end_to_end(tmp_path):
  proc = _cli("--config=configs/grpo_lambda.py:model=tiny,runlocal", f"--workdir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert sorted(int(d) for d in os.listdir(tmp_path / "ckpt")) == [2, 4]
  assert (tmp_path / "config.json").exists() and (tmp_path / "metrics.jsonl").exists()
