"""T-PPO slot scheduler on the tiny model: over random response lengths no prompt is lost or
duplicated, each completed group is scored exactly once with its full lengths, and a buffer
checkpointed mid-generation resumes to the same emissions as an uninterrupted run."""
import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from concise_jax import models, rollout
from concise_jax.models import tiny
from concise_jax.train import tppo_rollouts

CFG = tiny.tiny_config()
SP = rollout.SamplingParams(max_new_tokens=12, temperature=1.0)   # no EOS: length = budget
PARAMS = models.init_params(CFG, jax.random.key(0))


def _scheduler(budgets, scored, num_groups=3, window=4, refresh="keep"):
  def source(i):
    if i >= len(budgets):
      return None
    return tppo_rollouts.Prompt(tokens=[3 + i % 5, 4, 5][: 1 + i % 3], budget=int(budgets[i]))

  def score(pid, out):
    scored.append(pid)
    return np.asarray(out.length_b, np.float32)

  return tppo_rollouts.SlotScheduler(CFG, SP, num_groups=num_groups, group_size=2, prompt_len=8,
                                     window=window, source=source, score=score, refresh=refresh)


def _run(sched, buf, key, max_steps=100):
  emitted = []
  for _ in range(max_steps):
    if sched.drained(buf):
      break
    buf, done = sched.step(PARAMS, buf, key)
    emitted += done
  return buf, emitted


@pytest.mark.integration  # hypothesis examples through the rollout scheduler: ~16 s on 2 cores
@settings(max_examples=8, deadline=None)
@given(budgets=st.lists(st.integers(0, 14), min_size=1, max_size=7),
       seed=st.integers(0, 2**16))
def test_no_prompt_lost_or_duplicated_each_group_scored_once(budgets, seed):
  scored = []
  sched = _scheduler(budgets, scored)
  _, emitted = _run(sched, sched.init(), jax.random.key(seed))
  assert sorted(scored) == list(range(len(budgets)))          # each once, none lost
  assert [c.prompt_id for c in emitted] == scored
  for c in emitted:
    want = min(budgets[c.prompt_id], SP.max_new_tokens)
    np.testing.assert_array_equal(c.out.length_b, [want, want])
    np.testing.assert_array_equal(c.rewards_g, [want, want])
    np.testing.assert_array_equal(c.out.mask_bt.sum(axis=1), [want, want])


def test_checkpoint_mid_generation_resumes_exactly():
  """Two steps, the buffer copied to host (what a checkpoint holds) and restored into a fresh
  scheduler: the remaining emissions equal the uninterrupted run's, token for token."""
  budgets = [12, 3, 7, 12, 5, 1, 9]
  key = jax.random.key(7)
  sched = _scheduler(budgets, [])
  _, whole = _run(sched, sched.init(), key)
  first = _scheduler(budgets, [])
  buf = first.init()
  head = []
  for _ in range(2):
    buf, done = first.step(PARAMS, buf, key)
    head += done
  saved = jax.device_get(buf)
  assert np.asarray(saved.decode.length_b).max() > 0      # rows are mid-generation
  second = _scheduler(budgets, [])
  _, tail = _run(second, jax.device_put(saved), key)
  resumed = head + tail
  assert [c.prompt_id for c in resumed] == [c.prompt_id for c in whole]
  for a, b in zip(resumed, whole):
    np.testing.assert_array_equal(a.out.tokens_bt, b.out.tokens_bt)
    np.testing.assert_allclose(a.out.logp_bt, b.out.logp_bt, atol=1e-6)


def test_unknown_refresh_is_rejected():
  with pytest.raises(ValueError, match="refresh"):
    _scheduler([1], [], refresh="stale")


@pytest.mark.integration
def test_sharded_scheduler_equals_one_device():
  """8 rows over data x fsdp of a (2, 2, 2) mesh: the same groups, tokens and log-probs."""
  from concise_jax import distributed, sharding  # pylint: disable=import-outside-toplevel
  budgets = [12, 3, 7, 12, 5, 1, 9]
  key = jax.random.key(5)
  single = _scheduler(budgets, [], num_groups=4)
  _, want = _run(single, single.init(), key)
  layout = sharding.Layout.of(sharding.make_mesh((2, 2, 2)), sharding.DEFAULT_RULES)
  placed = distributed.put(PARAMS, sharding.tree_shardings(
      layout.mesh, models.param_axes(CFG), layout.rules, PARAMS))
  sharded = _scheduler(budgets, [], num_groups=4)
  sharded.layout = layout
  buf, got = sharded.init(), []
  while not sharded.drained(buf):
    buf, done = sharded.step(placed, buf, key)
    got += done
  assert len(buf.decode.cache.k_bksh[0].sharding.device_set) == 8
  assert [c.prompt_id for c in got] == [c.prompt_id for c in want]
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a.out.tokens_bt, b.out.tokens_bt)
    np.testing.assert_allclose(a.out.logp_bt, b.out.logp_bt, atol=1e-5)
