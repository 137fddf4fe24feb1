"""The EAGLE head trained online inside the RL loop (`rollout.speculative`, `draft.online`).

The target is a peaked tiny model (`draft.testing.sharp_tiny`): a freshly initialised one only
copies its last token, which any draft predicts. Rollouts are greedy (REINFORCE++ needs no group
spread), so the accepted length is the draft's argmax agreement chained over k tokens.
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from concise_jax import train
from concise_jax.draft import checkpoint as draft_checkpoint
from concise_jax.draft import testing as draft_testing
from concise_jax.train import checkpoint, loop, rollout_step, trainer
from configs import grpo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 10
STOP = 5            # the interrupted run stops here and resumes


@pytest.fixture(scope="module", autouse=True)
def sharp_target():
  """`model=tiny` loads the peaked tiny target for every run of this module."""
  plain = trainer.load_model

  def load(config):
    cfg, _, tokenizer = plain(config)
    params = draft_testing.sharp_tiny(config.seed)
    return cfg, jax.tree.map(lambda x: x.astype(cfg.param_dtype), params), tokenizer

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(trainer, "load_model", load)
    yield


def config(mesh=(1, 1, 1), steps=STEPS):
  c = grpo.get_config("model=tiny,runlocal")
  c.advantage.name = "reinforce_pp"      # group-free: greedy rollouts are allowed
  c.rollout.temperature = 0.0
  c.rollout.prompts_per_step = 8
  c.rollout.group_size = 1
  c.train.steps = steps
  c.train.ckpt_every = STOP
  c.eval.every = 0
  c.mesh.shape = mesh
  c.rollout.speculative.enabled = True
  c.rollout.speculative.lr = 1e-2        # ten updates of 8 short rollouts: a fast learner
  # A policy that barely moves: at the default rate the tiny policy collapses into repeating
  # itself within ten steps, which any head (even the step-0 "repeat" head) drafts perfectly.
  c.optim.lr = 1e-7
  return c


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def _restore(workdir, step, like):
  manager = checkpoint.make_manager(str(workdir))
  try:
    state, meta = checkpoint.restore(manager, like, step)
  finally:
    manager.close()
  return jax.tree.map(np.asarray, jax.device_get(state)), meta


def _assert_trees_equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("spec_straight")
  return workdir, train.run(config(), str(workdir))


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_draft_loss_falls_and_agreement_rises(straight):
  workdir, result = straight
  assert result.step == STEPS and not result.halted
  rows = _rows(workdir)
  assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
  loss = [r["draft/loss"] for r in rows]
  top1 = [r["draft/top1"] for r in rows]
  accept = [r["draft/accept_len"] for r in rows]
  print("draft/loss", np.round(loss, 3).tolist())
  print("draft/top1", np.round(top1, 3).tolist())
  print("draft/accept_len", np.round(accept, 3).tolist())
  assert all(1.0 <= a <= 5.0 for a in accept)      # k = 4: at most 5 tokens per target forward
  assert np.mean(loss[-3:]) < 0.85 * loss[0]
  assert np.mean(top1[-3:]) > top1[0] + 0.03       # argmax agreement on the completions
  assert int(result.state.draft.step) == STEPS     # one distillation step per update
  # The head is exported next to the checkpoint, where the eval CLI and init_from read it.
  exported = draft_checkpoint.load(str(workdir))
  _assert_trees_equal(jax.device_get(result.state.draft.head), jax.device_get(exported["head"]))


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_resume_reproduces_straight_run_bit_exactly(straight, tmp_path):
  workdir, result = straight
  first = train.run(config(), str(tmp_path), stop_at_step=STOP)
  assert first.step == STOP
  resumed = train.run(config(), str(tmp_path))
  assert resumed.step == STEPS
  state_a, meta_a = _restore(workdir, STEPS, result.state)
  state_b, meta_b = _restore(tmp_path, STEPS, result.state)
  assert state_a.draft is not None
  _assert_trees_equal(state_a, state_b)       # policy, optimiser, draft head and its optimiser
  assert meta_a["data"] == meta_b["data"]
  assert _rows(workdir) == _rows(tmp_path)     # draft/loss and draft/accept_len included


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_greedy_rollouts_are_the_same_with_and_without_speculation(straight):
  """Same params and key: the trained head changes how fast, never what is sampled."""
  _, result = straight
  c = config()
  with trainer.make_trainer(c) as r:
    state = r.state.replace(params=result.state.params, draft=result.state.draft)
    params = r.fns.model_params(state.params, r.frozen)
    sp = rollout_step.sampling_params(c, r.tokenizer)
    trained, fresh = {}, {}
    for i in range(3):    # three batches of prompts: the accepted length varies by prompt
      examples, key = next(r.iterator), jax.random.key(i)
      plain, _ = loop._sample_batch(r, params, examples, key, group_size=1, sp=sp)  # pylint: disable=protected-access
      spec, _ = loop._sample_batch(r, params, examples, key, group_size=1, sp=sp,  # pylint: disable=protected-access
                                   sample_fn=loop._sample_fn(r, state, trained))  # pylint: disable=protected-access
      loop._sample_batch(r, params, examples, key, group_size=1, sp=sp,  # pylint: disable=protected-access
                         sample_fn=loop._sample_fn(r, state.replace(draft=r.state.draft), fresh))  # pylint: disable=protected-access
      np.testing.assert_array_equal(plain.tokens_bt, spec.tokens_bt)
      np.testing.assert_array_equal(plain.length_b, spec.length_b)
      np.testing.assert_allclose(plain.old_logp_bt, spec.old_logp_bt, atol=1e-5)
  # Acceptance against step 0 on the same (final) policy and prompts: the distilled head
  # drafts longer runs than the step-0 head.
  print("accept_len trained head", trained["accepted"], "step-0 head", fresh["accepted"])
  assert np.mean(trained["accepted"]) > np.mean(fresh["accepted"]) + 0.1


def test_speculation_off_leaves_the_state_without_a_draft():
  c = config()
  c.rollout.speculative.enabled = False
  with trainer.make_trainer(c) as r:
    assert r.state.draft is None and r.draft_spec is None


@pytest.mark.integration
def test_sharded_loop_with_speculation(tmp_path):
  """The loop on the 8-device mesh: speculative rollouts and distillation on sharded rows."""
  result = train.run(config(mesh=(2, 2, 2), steps=2), str(tmp_path))
  assert result.step == 2 and not result.halted
  rows = _rows(tmp_path)
  assert all(np.isfinite(r["draft/loss"]) and r["draft/accept_len"] >= 1.0 for r in rows)
  draft = jax.device_get(result.state.draft)
  assert int(draft.step) == 2 and int(draft.token_counts.sum()) > 0
  # `python -m concise_jax.eval --speculative=eagle` on the workdir uses its trained head
  # (no --draft) and gives the plain greedy completions.
  plain = _eval_cli(tmp_path, "plain")
  spec = _eval_cli(tmp_path, "spec", "--speculative=eagle", "--draft_vocab=0")
  assert json.dumps(plain, sort_keys=True) == json.dumps(spec, sort_keys=True)


def _eval_cli(workdir, name, *extra):
  out = workdir / name
  proc = subprocess.run(
      [sys.executable, "-m", "concise_jax.eval", f"--checkpoint={workdir}",
       "--data=task:add_1digit", "--n=3", "--max_new_tokens=8", "--batch_size=2",
       "--instruction=brief", "--noprogress", f"--out_dir={out}", *extra],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out / "completions.jsonl", encoding="utf-8") as f:
    return [json.loads(line) for line in f]
