"""Held-out evaluation around training: step 0 and the last step, kept across a resume."""
import json
import os
import types

import jax
import numpy as np
import pytest

from concise_jax import data
from concise_jax.data import jsonl, tfds_builders
from concise_jax.eval import metrics as eval_metrics
from concise_jax.eval import runner
from concise_jax.rollout import mesh_sampling
from concise_jax.rollout.generate import chat_ids
from concise_jax.train import loop, metrics, rollout_step, step
from concise_jax.train import trainer as trainer_lib
from concise_jax.verify import Verifier
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


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
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
      second.state.params, {"base": trainer_lib.load_model(config)[1]})
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(lora_params),
               jax.device_get(policy.params))


def _eval_run(config, examples):
  """What `loop.evaluate` reads of a trainer, for a policy that is not being trained."""
  model_cfg, params, tokenizer = trainer_lib.load_model(config)
  r = types.SimpleNamespace(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                            fns=types.SimpleNamespace(model_params=lambda p, frozen: p),
                            frozen={}, eval_examples=examples, layout=None,
                            check=rollout_step.check_in_process)
  return r, types.SimpleNamespace(params=params)


@pytest.mark.integration  # compiles its own model programs: ~11 s on 2 cores
@pytest.mark.parametrize("temperature, samples", [(0.0, 1), (1.0, 2)])
def test_training_eval_reports_what_the_eval_cli_reports(temperature, samples):
  """Same policy, prompts, seed and settings: `loop.evaluate` and `concise_jax.eval`'s runner
  give the same summary, number for number (5 prompts in chunks of 4: the last is padded)."""
  config = quickstart.get_config("model=tiny,runlocal")
  config.eval.temperature, config.eval.samples_per_prompt = temperature, samples
  examples = data.load_dataset("task:add_1digit", split="test", n=5, seed=0)
  r, state = _eval_run(config, examples)
  trained = loop.evaluate(r, state)

  settings = runner.EvalSettings(
      greedy=temperature == 0, k=0 if temperature == 0 else samples, temperature=temperature,
      top_k=config.rollout.top_k, top_p=config.rollout.top_p,
      max_new_tokens=config.rollout.max_new_tokens, batch_size=4 * samples,
      instruction=config.data.instruction, seed=config.seed,
      max_prompt_tokens=config.rollout.max_prompt_tokens)
  policy = runner.Policy("tiny", r.model_cfg, state.params, r.tokenizer)
  with Verifier(num_workers=1) as verifier:
    records, _ = runner.evaluate_dataset(policy, examples, settings, verifier, label="eval",
                                         progress=False)
  summary = eval_metrics.summarize(records)
  expected = {f"eval/{k}": v for k, v in eval_metrics.flatten(summary).items()}
  assert {k: trained[k] for k in expected} == pytest.approx(expected, nan_ok=True)
  section = "greedy" if temperature == 0 else "sampled"
  assert summary[section]["num_completions"] == 5 * samples
  assert summary[section]["total_tokens"] > 0
  # The training tables' names carry the same values.
  comps = [c for rec in records for c in ([rec["greedy"]] if section == "greedy"
                                           else rec["samples"])]
  assert trained["eval/len/all/mean"] == pytest.approx(np.mean([c["tokens"] for c in comps]))
  assert trained["eval/rollout/accuracy"] == pytest.approx(
      summary[section]["accuracy" if section == "greedy" else "mean_at_k"])
  assert trained["eval/rollout/truncation_rate"] == pytest.approx(
      summary[section]["truncation_rate"])


def test_training_data_takes_the_eval_spec_syntax():
  config = quickstart.get_config("model=tiny,runlocal")
  config.data.dataset = "task:arithmetic?difficulty=2-3&unique=true"
  config.eval.every = 2
  train, held_out = trainer_lib.load_prompts(config)
  assert len(train) == 32 and {e.difficulty for e in train} == {2, 3}
  assert len(held_out) == 8 and {e.split for e in held_out} == {"test"}
  assert len({e.prompt for e in train}) == 32       # unique=true reached the generator
  config.data.dataset = "task:arithmetic?level=2"
  with pytest.raises(ValueError, match="unknown option.*'level'.*valid options: difficulty, "
                                       "unique"):
    trainer_lib.load_prompts(config)


def _write_gsm8k(path, n, bad_line=None):
  rows = [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(n)]
  if bad_line is not None:
    rows[bad_line - 1] = {"question": "q"}
  path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
  return str(path)


def test_training_files_are_prepared_by_tfds_once_and_reused(tmp_path, monkeypatch):
  monkeypatch.setenv("CONCISE_JAX_DATA_DIR", str(tmp_path / "prepared"))
  parsed = []
  builder = tfds_builders._LocalJsonl  # pylint: disable=protected-access
  generate = builder._generate_examples  # pylint: disable=protected-access
  monkeypatch.setattr(builder, "_generate_examples",
                      lambda self: (parsed.append(self.file_split), generate(self))[1])
  path = _write_gsm8k(tmp_path / "toy_train.jsonl", 12)
  config = quickstart.get_config("model=tiny,runlocal")
  config.data.dataset = f"gsm8k:{path}"
  first, _ = trainer_lib.load_prompts(config)
  second, _ = trainer_lib.load_prompts(config)
  assert parsed == ["train"]                         # the second load read the prepared copy
  assert first == second == jsonl.read_jsonl("gsm8k", path)
  assert [e.answer for e in first[:3]] == ["0", "2", "4"]
  assert any(f.endswith(".array_record-00000-of-00001")
             for _, _, files in os.walk(tmp_path / "prepared") for f in files)


def test_malformed_training_file_names_file_and_line(tmp_path, monkeypatch):
  monkeypatch.setenv("CONCISE_JAX_DATA_DIR", str(tmp_path / "prepared"))
  path = _write_gsm8k(tmp_path / "bad_train.jsonl", 4, bad_line=3)
  config = quickstart.get_config("model=tiny,runlocal")
  config.data.dataset = f"gsm8k:{path}"
  with pytest.raises(jsonl.DataError, match=f"{path}:3: field 'answer'"):
    trainer_lib.load_prompts(config)
  config.data.bad_rows = "drop"
  train, _ = trainer_lib.load_prompts(config)
  assert [e.answer for e in train] == ["0", "2", "6"]


def test_training_rollouts_encode_prompts_as_the_shared_encoder():
  """`rollout_step` (training rollouts) and `mesh_sampling.encode_prompts` (evaluation) turn
  the same examples into the same padded tokens, cut included, with and without a stated
  budget (`rollout_step` re-exports the shared encoder; this guards that it stays so)."""
  config = quickstart.get_config("model=tiny,runlocal")
  config.rollout.max_prompt_tokens = 40               # cuts the longer step-by-step prompts
  _, _, tokenizer = trainer_lib.load_model(config)
  examples = data.load_dataset("task:word_problems", n=3, seed=0)
  shared = mesh_sampling.PromptFormat(instruction=config.data.instruction,
                                      system_prompt=config.data.system_prompt,
                                      max_prompt_tokens=config.rollout.max_prompt_tokens,
                                      budget_template="Think for {n} tokens.")
  budgets = [5, 10, 20]
  tokens, mask, cut = mesh_sampling.encode_prompts(tokenizer, examples, shared, budgets)
  stated = mesh_sampling.with_budgets(examples, shared.budget_template, budgets)
  train_tokens, train_mask, train_cut = rollout_step.encode_prompts(
      tokenizer, stated, rollout_step.prompt_format(config))
  np.testing.assert_array_equal(tokens, train_tokens)
  np.testing.assert_array_equal(mask, train_mask)
  assert tokens.shape == (3, 40) and cut == train_cut == 3
  header = chat_ids(tokenizer, "x")[-2:]  # a cut keeps the assistant header
  assert all(list(row[-2:]) == header for row in tokens)
  # the last 38 characters (the tiny tokenizer is per character, lower case) + 2 header tokens
  assert tokenizer.decode(list(tokens[0])) == "hink for 5 tokens.\nthink step by step."
  plain = mesh_sampling.encode_prompts(tokenizer, examples, shared)[0]
  assert not np.array_equal(plain, tokens)            # no budgets: nothing stated
  sp = rollout_step.sampling_params(config, tokenizer)
  assert sp == mesh_sampling.sampling_params(
      tokenizer, max_new_tokens=config.rollout.max_new_tokens,
      temperature=config.rollout.temperature, top_k=config.rollout.top_k,
      top_p=config.rollout.top_p, return_entropy=sp.return_entropy)
