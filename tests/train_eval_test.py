"""Held-out evaluation around training: step 0 and the last step, kept across a resume."""
import json

import jax
import numpy as np

from concise_jax.eval import runner
from concise_jax.train import loop, metrics, step
from configs import quickstart


def test_before_after_table_formats_the_eval_metrics():
  before = {"eval/rollout/accuracy": 0.25, "eval/len/all/mean": 88.04,
            "eval/len/correct/mean": float("nan"), "eval/rollout/truncation_rate": 0.5,
            "eval/rollout/correct_per_1k_tokens": 2.8409}
  table = metrics.before_after_table(before, {"eval/rollout/accuracy": 0.5})
  assert "| accuracy | 25.0% | 50.0% |" in table
  assert "| mean response tokens | 88.0 | n/a |" in table
  assert "| mean tokens, correct answers | n/a | n/a |" in table
  assert "| correct per 1k tokens | 2.84 | n/a |" in table


def test_run_evaluates_at_step_0_and_at_the_end_and_keeps_step_0_over_a_resume(tmp_path):
  config = quickstart.get_config("model=tiny,runlocal")
  config.train.steps = 3
  config.train.ckpt_every = 2
  config.eval.every = 2
  config.eval.num_prompts = 4
  first = loop.run(config, str(tmp_path), stop_at_step=2)
  assert first.step == 2
  assert set(first.eval_before) == set(first.eval_after) and first.eval_before
  with open(tmp_path / "eval_step0.json", encoding="utf-8") as f:
    assert json.load(f) == first.eval_before
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl", encoding="utf-8")]
  assert [r["step"] for r in rows] == [0, 1, 2]
  assert "eval/rollout/accuracy" in rows[0] and "eval/rollout/accuracy" in rows[2]
  second = loop.run(config, str(tmp_path))            # resumes at 2, ends at 3: evaluates there
  assert second.step == 3
  assert second.eval_before == first.eval_before
  assert second.eval_after and second.metrics["eval/rollout/accuracy"] == (
      second.eval_after["eval/rollout/accuracy"])

  # The evaluation CLI loads the workdir's latest checkpoint with the adapters merged.
  policy = runner.load_policy(str(tmp_path))
  lora_params = step.policy_from_config(config).model_params(
      second.state.params, {"base": loop.load_model(config)[1]})
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(lora_params),
               jax.device_get(policy.params))
