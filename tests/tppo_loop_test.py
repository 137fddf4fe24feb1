"""The T-PPO trainer (`train.tppo_loop`) on the tiny model: it trains, logs, learns a value and
resumes exactly.

The random tiny model never answers correctly, so the runs score with a checker that calls
every completion correct: the outcome reward is 1, the value of every state is 1 (γ = λ_critic
= 1), and a critic starting at 0 must move towards it.

The end-to-end runs compile the windowed decoder and the update (~50 s on a loaded 2-core CPU),
so they run in the integration step; option checks and the dispatch stay in the default suite.
"""
import json

import jax
import numpy as np
import pytest

from concise_jax import main
from concise_jax.train import tppo_loop
from configs import tppo as tppo_config

ALWAYS_RIGHT = lambda completions, refs, kinds: [True] * len(completions)


def _config(steps: int = 8, **tppo):
  c = tppo_config.get_config("model=tiny,runlocal")
  c.train.steps = steps
  c.train.ckpt_every = 100
  c.tppo.critic_lr = 0.02             # the head moves visibly within a few updates
  for key, value in tppo.items():
    c.tppo[key] = value
  return c


def _rows(workdir) -> list[dict]:
  with open(f"{workdir}/metrics.jsonl", encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  result = tppo_loop.run_tppo(_config(), str(workdir), check=ALWAYS_RIGHT)
  return workdir, result


@pytest.mark.integration
def test_run_writes_one_metrics_row_per_window_and_the_critic_learns(straight):
  workdir, result = straight
  rows = _rows(workdir)
  assert [r["step"] for r in rows] == list(range(1, 9)) and result.step == 8
  # T = 16 tokens, W = 8: every group needs two windows, so half the windows complete them.
  scored = [r for r in rows if r["rollout/completed_groups"] > 0]
  assert len(scored) >= 3
  assert all(r["rollout/accuracy"] == 1.0 and r["len/mean"] > 0 for r in scored)
  assert all(0 < r["tppo/utilisation"] <= 1 for r in rows)
  assert all(r["tppo/updated"] == 1.0 for r in rows)        # alive rows train every window
  assert any(r["tppo/alive_rows"] > 0 for r in rows)
  assert all(np.isfinite(r["loss/policy"]) for r in rows)
  # The value loss on the scored windows falls as V moves from 0 towards the return 1.
  losses = [r["loss/value"] for r in scored]
  assert losses[-1] < 0.5 * losses[0], losses
  assert float(result.state.critic["head"]["b"]) > 0.05


@pytest.mark.integration
def test_stop_and_resume_equals_an_uninterrupted_run(straight, tmp_path):
  workdir, result = straight
  first = tppo_loop.run_tppo(_config(), str(tmp_path), check=ALWAYS_RIGHT, stop_after=3)
  assert first.step == 3
  resumed = tppo_loop.run_tppo(_config(), str(tmp_path), check=ALWAYS_RIGHT)
  assert resumed.step == 8
  leaves = lambda s: jax.tree.leaves(jax.device_get(s))
  for a, b in zip(leaves(result.state), leaves(resumed.state), strict=True):
    np.testing.assert_array_equal(a, b)
  strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]
  assert strip(_rows(tmp_path)) == strip(_rows(workdir))


@pytest.mark.integration
def test_a_non_finite_loss_halts_and_keeps_the_last_good_checkpoint(monkeypatch, tmp_path):
  real = tppo_loop.iteration

  def poisoned(setup, state):
    new_state, m = real(setup, state)
    if int(new_state.step) == 3:
      m = {**m, "loss/value": float("nan")}
    return new_state, m

  monkeypatch.setattr(tppo_loop, "iteration", poisoned)
  config = _config(steps=5)
  config.train.ckpt_every = 1
  result = tppo_loop.run_tppo(config, str(tmp_path), check=ALWAYS_RIGHT)
  assert result.halted and result.step == 2
  assert [r["step"] for r in _rows(tmp_path)] == [1, 2]
  assert sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()) == [1, 2]


@pytest.mark.integration
def test_runs_data_parallel_over_slots_on_eight_devices(tmp_path):
  c = _config(steps=3)
  c.mesh.shape = (1, -1, 1)           # 8 simulated devices (tests/conftest.py), rows over fsdp
  c.eval.every, c.eval.num_prompts = 3, 8   # the held-out evaluation decodes on the mesh too
  result = tppo_loop.run_tppo(c, str(tmp_path), check=ALWAYS_RIGHT)
  assert jax.device_count() == 8 and result.step == 3
  decode = result.state.buffer.decode
  assert len(decode.length_b.sharding.device_set) == 8
  rows = [r for r in _rows(tmp_path) if r["step"] > 0]
  assert len(rows) == 3 and all(np.isfinite(r["loss/value"]) for r in rows)
  assert result.eval_before["eval/greedy/accuracy"] == 1.0
  assert result.eval_after["eval/greedy/accuracy"] == 1.0


@pytest.mark.integration
def test_held_out_evaluation_at_step_zero_every_period_and_the_end(tmp_path):
  """eval.every = 2 over 5 iterations: step 0 (also eval_step0.json), 2, 4 and the last, 5,
  under the GRPO trainer's metric names; a resumed run reads step 0's back."""
  c = _config(steps=5)
  c.eval.every, c.eval.num_prompts = 2, 4
  result = tppo_loop.run_tppo(c, str(tmp_path), check=ALWAYS_RIGHT, stop_after=3)
  rows = _rows(tmp_path)
  evaluated = [r["step"] for r in rows if "eval/greedy/accuracy" in r]
  assert evaluated == [0, 2]
  for r in rows:
    if r["step"] in evaluated:
      assert r["eval/greedy/accuracy"] == 1.0 and r["eval/rollout/accuracy"] == 1.0
      assert 0 < r["eval/len/all/mean"] <= c.rollout.max_new_tokens
  assert result.eval_before["eval/greedy/accuracy"] == 1.0
  finite = lambda d: {k: v for k, v in d.items() if np.isfinite(v)}   # NaN: no wrong answers
  saved = json.loads((tmp_path / "eval_step0.json").read_text())
  assert finite(saved) == finite(result.eval_before) and set(saved) == set(result.eval_before)
  resumed = tppo_loop.run_tppo(c, str(tmp_path), check=ALWAYS_RIGHT)
  assert resumed.step == 5 and finite(resumed.eval_before) == finite(result.eval_before)
  assert [r["step"] for r in _rows(tmp_path) if "eval/greedy/accuracy" in r] == [0, 2, 4, 5]
  assert resumed.eval_after["eval/greedy/accuracy"] == 1.0


def test_main_dispatches_tppo_configs_to_the_tppo_loop(monkeypatch, tmp_path):
  calls = []
  monkeypatch.setattr(tppo_loop, "run_tppo", lambda config, workdir: calls.append(
      (config.trainer, workdir)) or "ran")
  assert main.launch(_config(), str(tmp_path)) == "ran"
  assert calls == [("tppo", str(tmp_path))]


def test_out_of_range_options_fail_before_training():
  c = _config(window=0, critic="shared")
  with pytest.raises(ValueError, match="tppo.window=0.*tppo.critic='shared'"):
    tppo_loop.check_options(c.tppo)
  c = _config()
  c.tppo.advantage.name = "grpo"
  with pytest.raises(ValueError, match="outcome estimator.*valid choices: egae, gae"):
    tppo_loop.check_options(c.tppo)
  c = _config()
  c.tppo.advantage.egae.lam_policy = 1.5
  c.tppo.advantage.egae.lambda_length = "window_end"
  with pytest.raises(ValueError, match="lam_policy=1.5.*lambda_length='window_end'"):
    tppo_loop.check_options(c.tppo)


@pytest.mark.parametrize("reward, why", [("hapo_linear", "per-prompt state"),
                                         ("pear", "host features")])
def test_rewards_the_slot_scheduler_cannot_serve_fail_before_loading_the_model(reward, why):
  c = _config()
  c.reward.name = reward
  with pytest.raises(ValueError, match=f"{why}.*grpo_lambda"):
    tppo_loop.make_setup(c)


class _Tokenizer:
  """Decodes a row to an answer marker when its first token is 7 (format_ok), else to ''."""

  def decode(self, ids):
    return "Answer: 1" if len(ids) and ids[0] == 7 else ""


def _completed(group_index, prompt_id, correct, lengths, t=8):
  from concise_jax.rollout import sampler  # pylint: disable=import-outside-toplevel
  lengths = np.asarray(lengths)
  mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int32)
  out = sampler.SampleOutput(
      tokens_bt=np.where(mask, 7, 0).astype(np.int32), logp_bt=-0.5 * mask,
      mask_bt=mask, length_b=lengths.astype(np.int32), finished_b=lengths < t,
      truncated_b=lengths >= t)
  return tppo_loop.tppo_rollouts.Completed(prompt_id=prompt_id, out=out,
                                           rewards_g=np.asarray(correct, np.float32),
                                           group_index=group_index)


@pytest.mark.parametrize("reward", ["grpo_lambda", "kimi_length"])
def test_completed_groups_get_the_grpo_trainers_reward(reward):
  """Two groups completed in one window, scored by the T-PPO loop, equal the GRPO trainer's
  reward function (`components.make_score`, what `trainer.Functions.score` jits) on the same
  rows, and the hand-computed GRPO-λ / Kimi numbers."""
  from concise_jax import components, options  # pylint: disable=import-outside-toplevel
  c = _config()
  c.reward.name = reward
  c = options.resolve(c)
  g = c.rollout.group_size
  assert g == 4
  completed = [_completed(2, 10, [1, 1, 0, 1], [4, 6, 8, 2]),
               _completed(0, 11, [0, 0, 0, 0], [3, 3, 5, 3])]
  score = jax.jit(components.make_score(c))
  rewards, correct, metrics = tppo_loop.score_completed(score, completed, _Tokenizer(),
                                                        lambda pos: pos - 10)
  np.testing.assert_array_equal(correct, [1, 1, 0, 1, 0, 0, 0, 0])
  # GRPO's path: the same rows as a Rollout, the registered reward bound as the GRPO trainer binds.
  batch = tppo_loop.completed_rollout(completed, _Tokenizer(), lambda pos: pos - 10)
  np.testing.assert_array_equal(batch.prompt_index_b, [0] * 4 + [1] * 4)
  assert batch.format_ok_b.all() and list(batch.truncated_b) == [0, 0, 1, 0, 0, 0, 0, 0]
  fn = components.bind(components.rewards.REWARDS.component(reward),
                       components.options(c, "reward"), group_size=g,
                       max_new_tokens=c.rollout.max_new_tokens)
  want, _, want_metrics = fn(batch, ())
  np.testing.assert_allclose(rewards, want.rewards_b, rtol=1e-6)
  assert set(metrics) == {f"reward/{k}" for k in want_metrics}
  # Group 1: lengths 4, 6, 8, 2 → Kimi λ = 0.5 − (L − 2)/6 = [1/6, −1/6, −1/2, 1/2]; the wrong
  # row keeps min(0, λ); weight 0.4 on a 0/1 base. Group 2: every row wrong, λ = 0.5 − (L−3)/2
  # = [.5, .5, −.5, .5] → 0.4 · min(0, λ) = −0.2 on the long row (Kimi only: wrong_reward −0.5).
  if reward == "grpo_lambda":   # the top half of 2 groups by accuracy: group 1 only
    np.testing.assert_allclose(rewards, [1 + 0.4 / 6, 1 - 0.4 / 6, -0.2, 1.2, 0, 0, 0, 0],
                               rtol=1e-5)
  else:
    np.testing.assert_allclose(
        rewards, [1 + 0.4 / 6, 1 - 0.4 / 6, -0.5 - 0.2, 1.2, -0.5, -0.5, -0.7, -0.5], rtol=1e-5)


def test_a_reward_that_cuts_tokens_is_refused_at_scoring():
  from concise_jax import types  # pylint: disable=import-outside-toplevel
  def cutting(states, batch):
    out = types.make_reward_output(batch, np.ones(batch.length_b.shape, np.float32))
    return out.replace(loss_mask_bt=np.zeros_like(batch.mask_bt)), states, {}
  with pytest.raises(ValueError, match="sequence rewards only"):
    tppo_loop.score_completed(cutting, [_completed(0, 0, [1, 0, 1, 0], [1, 2, 3, 4])],
                              _Tokenizer(), lambda pos: pos)


def test_prompt_stream_is_a_seeded_permutation_per_epoch():
  index = tppo_loop.prompt_stream(5, seed=3)
  epochs = [[index(e * 5 + i) for i in range(5)] for e in range(3)]
  assert all(sorted(e) == list(range(5)) for e in epochs)
  assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
  again = tppo_loop.prompt_stream(5, seed=3)
  assert [again(p) for p in range(15)] == sum(epochs, [])     # a resumed run sees the same


def test_update_batch_keeps_only_the_rows_that_train_now():
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from concise_jax.models import tiny  # pylint: disable=import-outside-toplevel
  from concise_jax.rollout import sampler, windowed  # pylint: disable=import-outside-toplevel
  sp = sampler.SamplingParams(max_new_tokens=4)
  decode = windowed.init_state(tiny.tiny_config(), 3, 2, sp)
  decode = decode.replace(length_b=jnp.asarray([2, 4, 3], jnp.int32),
                          tokens_bt=jnp.full((3, 4), 9, jnp.int32),
                          logp_bt=jnp.full((3, 4), -1.0))
  batch = tppo_loop._batch(decode, jnp.asarray([True, False, True]),  # pylint: disable=protected-access
                           jnp.asarray([1.0, 1.0, 0.0]), jnp.asarray([False, False, True]))
  np.testing.assert_array_equal(batch.mask_bt, [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
  np.testing.assert_array_equal(batch.tokens_bt, 9 * batch.mask_bt)
  np.testing.assert_array_equal(batch.old_logp_bt, -batch.mask_bt)
  np.testing.assert_array_equal(batch.alive_b, [False, False, True])


def test_bad_tppo_options_fail_validation_naming_the_key():
  from concise_jax import config_check  # pylint: disable=import-outside-toplevel
  c = _config()
  c.tppo.critic = "nope"
  c.tppo.window = 0
  errors = "\n".join(config_check.validate(c))
  assert "tppo.critic" in errors and "head" in errors and "separate" in errors
  assert "tppo.window" in errors
  c = _config()
  c.tppo.advantage.name = "grpo"
  c.tppo.advantage.egae.lam_policy = -0.1
  errors = "\n".join(config_check.validate(c))
  assert "config.tppo.advantage.name='grpo': valid choices: egae, gae" in errors
  assert "config.tppo.advantage.egae.lam_policy=-0.1" in errors
  assert config_check.validate(_config()) == []
