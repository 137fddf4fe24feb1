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
  result = tppo_loop.run_tppo(c, str(tmp_path), check=ALWAYS_RIGHT)
  assert jax.device_count() == 8 and result.step == 3
  decode = result.state.buffer.decode
  assert len(decode.length_b.sharding.device_set) == 8
  rows = _rows(tmp_path)
  assert len(rows) == 3 and all(np.isfinite(r["loss/value"]) for r in rows)


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
  c.reward.name = "dler"
  with pytest.raises(ValueError, match="correctness"):
    tppo_loop.make_setup(c)


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
  assert config_check.validate(_config()) == []
