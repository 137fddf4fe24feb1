"""Deterministic, shardable, checkpointable prompt batches with grain.

    source ─ trim to a multiple of shard_count ─ shuffle(seed; reshuffled every epoch)
           ─ repeat(num_epochs) ─ [shard_index::shard_count] ─ batch(batch_size) ─ iterator

Every process shuffles the *global* order with the same seed and takes its stride of it, so
the processes of a multi-host run see disjoint prompts that together cover each epoch exactly
once, and a new partition every epoch. The iterator's `get_state()` is grain's JSON-serialisable
position (`{"next_index": k}`, counted in batches); `set_state()` resumes exactly there, in the
middle of an epoch or across an epoch boundary, because the order is a pure function of
(seed, index).
"""
import hashlib
from typing import Sequence

import grain

from concise_jax.data.example import Example


def shuffle_seed(seed: int) -> int:
  """A 32-bit grain shuffle seed derived from `seed`.

  grain reshuffles epoch e with seed + e, so passing user seeds straight through would make
  seed 1's first epoch equal seed 0's second. Hashing decorrelates neighbouring seeds.
  """
  digest = hashlib.blake2b(f"data-order/{seed}".encode(), digest_size=4).digest()
  return int.from_bytes(digest, "big")


def make_prompt_iterator(source: Sequence[Example], batch_size: int, seed: int,
                         shard_index: int = 0, shard_count: int = 1,
                         num_epochs: int | None = None, *,
                         num_threads: int = 0) -> grain.DatasetIterator:
  """An iterator of `list[Example]` batches for this process.

  Args:
    source: random-access examples: a list (built-in tasks, `read_jsonl`) or a prepared
      tfds source (`tfds_builders.prepare`).
    batch_size: examples per batch for this process (the global batch is
      `batch_size * shard_count`). Every batch is full: the last partial batch is dropped.
    seed: data-order seed; the same seed gives the same batches.
    shard_index: this process's index, e.g. `jax.process_index()`.
    shard_count: number of processes, e.g. `jax.process_count()`.
    num_epochs: passes over the data; None repeats forever.
    num_threads: grain read threads; 0 suits in-memory and small local sources.

  Returns:
    A grain `DatasetIterator` with `get_state()` / `set_state(state)` for checkpointing.

  Raises:
    ValueError: bad shard arguments, or too few examples for one item per shard.
  """
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  # Equal shard sizes, so every process yields the same number of batches and none waits in a
  # collective for a batch that never comes; at most shard_count - 1 examples are left out.
  usable = len(source) // shard_count * shard_count
  if usable == 0:
    raise ValueError(f"{len(source)} examples cannot feed {shard_count} shards")
  ds = grain.MapDataset.source(source)[:usable]
  ds = ds.shuffle(seed=shuffle_seed(seed)).repeat(num_epochs)
  ds = ds[shard_index::shard_count]
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=list)
  read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=batch_size)
  return iter(ds.to_iter_dataset(read_options))
