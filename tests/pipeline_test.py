"""grain prompt iterator: determinism, per-epoch reshuffling, sharding, checkpoint/resume."""
import itertools
import json

import pytest

from concise_jax.data import pipeline
from concise_jax.data import tfds_builders
from concise_jax.data.example import Example


def _source(n):
  return [Example(f"ex{i:02d}", f"What is {i} + 1?", str(i + 1), 1, "train", "toy")
          for i in range(n)]


def _ids(iterator, n_batches):
  return [[e.id for e in batch] for batch in itertools.islice(iterator, n_batches)]


def test_same_seed_same_batches_other_seed_other_order():
  a = _ids(pipeline.make_prompt_iterator(_source(12), 4, seed=0), 6)
  b = _ids(pipeline.make_prompt_iterator(_source(12), 4, seed=0), 6)
  c = _ids(pipeline.make_prompt_iterator(_source(12), 4, seed=1), 6)
  assert a == b and a != c
  assert all(len(batch) == 4 for batch in a)


def test_each_epoch_is_a_new_permutation():
  batches = _ids(pipeline.make_prompt_iterator(_source(12), 4, seed=0), 9)
  epochs = [sum(batches[i:i + 3], []) for i in (0, 3, 6)]
  expected = sorted(e.id for e in _source(12))
  assert all(sorted(epoch) == expected for epoch in epochs)
  assert len({tuple(epoch) for epoch in epochs}) == 3  # reshuffled every epoch


def test_finite_epochs_stop_and_drop_the_partial_batch():
  # 10 examples x 2 epochs = 20 items -> 6 full batches of 3; the last 2 items are dropped.
  batches = list(pipeline.make_prompt_iterator(_source(10), 3, seed=0, num_epochs=2))
  assert len(batches) == 6


def test_shards_are_disjoint_equal_and_cover_each_epoch():
  # 14 examples over 3 processes: 12 usable (equal shards of 4), batch 2 -> 2 batches/epoch.
  shards = [_ids(pipeline.make_prompt_iterator(_source(14), 2, seed=5, shard_index=i,
                                               shard_count=3, num_epochs=1), 10)
            for i in range(3)]
  assert [len(s) for s in shards] == [2, 2, 2]
  seen = [item for shard in shards for batch in shard for item in batch]
  assert len(seen) == len(set(seen)) == 12
  # the next epoch partitions differently (global reshuffle, then stride)
  first = [set(sum(_ids(pipeline.make_prompt_iterator(_source(12), 2, seed=5, shard_index=0,
                                                      shard_count=3), 4)[i:i + 2], []))
           for i in (0, 2)]
  assert first[0] != first[1]


@pytest.mark.parametrize("stop_after", [1, 3, 4])  # 3 batches = exactly one epoch boundary
def test_resume_from_json_state_continues_exactly(stop_after):
  full = _ids(pipeline.make_prompt_iterator(_source(12), 4, seed=7), 8)
  first = pipeline.make_prompt_iterator(_source(12), 4, seed=7)
  head = _ids(first, stop_after)
  state = json.loads(json.dumps(first.get_state()))  # what the checkpoint stores
  resumed = pipeline.make_prompt_iterator(_source(12), 4, seed=7)
  resumed.set_state(state)
  assert head + _ids(resumed, 8 - stop_after) == full


def test_resume_per_shard():
  make = lambda: pipeline.make_prompt_iterator(_source(16), 2, seed=1, shard_index=1,
                                               shard_count=2)
  full = _ids(make(), 6)
  it = make()
  head = _ids(it, 2)
  resumed = make()
  resumed.set_state(it.get_state())
  assert head + _ids(resumed, 4) == full


def test_reads_a_prepared_tfds_source(tmp_path):
  path = tmp_path / "toy_train.jsonl"
  path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n"
                          for i in range(10)), encoding="utf-8")
  source = tfds_builders.prepare("gsm8k", str(path), str(tmp_path / "tfds"))
  batches = list(pipeline.make_prompt_iterator(source, 5, seed=0, num_epochs=1))
  assert sorted(int(e.answer) for batch in batches for e in batch) == list(range(10))


def test_bad_arguments():
  with pytest.raises(ValueError, match="shard_index 2 not in"):
    pipeline.make_prompt_iterator(_source(4), 2, seed=0, shard_index=2, shard_count=2)
  with pytest.raises(ValueError, match="cannot feed 4 shards"):
    pipeline.make_prompt_iterator(_source(3), 1, seed=0, shard_index=0, shard_count=4)
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.make_prompt_iterator(_source(3), 0, seed=0)
