"""Length-bucketed micro-batches vs padding every micro-batch to the cap: the whole jitted
update (`step.make_update_step`) at the quickstart's shapes (4 prompts × 8 samples, 48 prompt
tokens, a 128-token cap, micro-batches of 8 rows, LoRA rank 16, KL off) on a reduced
SmolLM2-shaped model (random weights: the timing depends only on shapes), measured
alternately in one run.

  python experiments/bench_buckets.py --layers=4 --d_model=256 --buckets=4

Completion lengths mimic the quickstart's: each group's mean is drawn from 38–88 tokens, its
rows spread ±`spread` around it. Prints both times, their ratio and the completion columns
each computes (prompt tokens are the same in both).
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from concise_jax import models, types
from concise_jax.train import step
from concise_jax.train import trainer as trainer_lib
from concise_jax.train.state import init_train_state
from configs import quickstart

_LAYERS = flags.DEFINE_integer("layers", 4, "decoder layers")
_D = flags.DEFINE_integer("d_model", 256, "model width (heads of 64, GQA 2:1, MLP 3·D)")
_VOCAB = flags.DEFINE_integer("vocab", 4096, "vocabulary")
_BUCKETS = flags.DEFINE_integer("buckets", 4, "optim.length_buckets of the bucketed update")
_MIN, _MAX = (flags.DEFINE_integer("min_mean", 38, "lowest group mean length"),
              flags.DEFINE_integer("max_mean", 88, "highest group mean length"))
_SPREAD = flags.DEFINE_integer("spread", 20, "± spread of a row's length around its group's")
_KL = flags.DEFINE_float("kl", 0.0, "kl.coef (> 0 adds the reference pass)")
_REMAT = flags.DEFINE_string("remat", "dots", "model.remat")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls of each (after one warm-up)")
_CHUNK = flags.DEFINE_integer("logp_chunk", 64, "train.logp_chunk (32 divides every bucket of "
                              "T=128, K=4; 64 pads the 96 bucket's head to 128)")


def _batch(config, vocab: int, rng) -> step.UpdateBatch:
  p, g = config.rollout.prompts_per_step, config.rollout.group_size
  s, t, b = config.rollout.max_prompt_tokens, config.rollout.max_new_tokens, p * g
  mean_p = rng.integers(_MIN.value, _MAX.value + 1, p)
  len_b = np.clip(np.repeat(mean_p, g) + rng.integers(-_SPREAD.value, _SPREAD.value + 1, b),
                  1, t)
  mask_bt = (np.arange(t)[None] < len_b[:, None]).astype(np.float32)
  rollout = types.Rollout(
      tokens_bt=(rng.integers(3, vocab, (b, t)) * mask_bt).astype(np.int32), mask_bt=mask_bt,
      length_b=len_b.astype(np.int32), correct_b=rng.random(b) < 0.5,
      format_ok_b=np.ones(b, bool), truncated_b=len_b == t,
      prompt_index_b=np.repeat(np.arange(p), g).astype(np.int32),
      old_logp_bt=np.zeros((b, t), np.float32),
      prompt_tokens_bs=np.repeat(rng.integers(3, vocab, (p, s)), g, 0).astype(np.int32),
      prompt_mask_bs=np.ones((b, s), np.float32))
  reward_out = types.make_reward_output(rollout, rollout.correct_b.astype(np.float32))
  return step.UpdateBatch(rollout=rollout, reward_out=reward_out, keep_b=np.ones(b, bool))


def main(_):
  config = quickstart.get_config()
  config.kl.coef = _KL.value
  config.train.logp_chunk = _CHUNK.value
  d = _D.value
  model_cfg = models.SMOLLM2_135M.replace(
      vocab_size=_VOCAB.value, d_model=d, n_layers=_LAYERS.value, n_heads=d // 64,
      n_kv_heads=max(1, d // 128), head_dim=64, mlp_dim=3 * d, remat=_REMAT.value)
  params = models.init_params(model_cfg, jax.random.key(0))
  trainable, frozen, _ = trainer_lib.split_trainable(config, model_cfg, params)
  batch = _batch(config, _VOCAB.value, np.random.default_rng(0))
  t = config.rollout.max_new_tokens
  fns, columns = {}, {}
  for name, buckets in (("padded", 0), (f"buckets={_BUCKETS.value}", _BUCKETS.value)):
    config.optim.length_buckets = buckets
    spec = step.UpdateSpec.from_config(config)
    tx, _ = spec.optimizer()
    state = init_train_state(trainable, tx)
    fn = jax.jit(step.make_update_step(spec, model_cfg, tx))
    start = time.perf_counter()
    jax.block_until_ready(fn(state, frozen, batch))
    print(f"{name}: compile + first call {time.perf_counter() - start:.1f} s")
    fns[name] = (fn, state)
    columns[name] = _columns(batch.rollout.mask_bt, config, buckets)
  times = {name: [] for name in fns}
  for _ in range(_REPEATS.value):
    for name, (fn, state) in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn(state, frozen, batch))
      times[name].append(time.perf_counter() - start)
  len_b = np.asarray(batch.rollout.length_b)
  print(f"model d={d} layers={_LAYERS.value} vocab={_VOCAB.value} remat={_REMAT.value}; "
        f"rows={len_b.size} S={config.rollout.max_prompt_tokens} T={t} "
        f"micro_batch={config.optim.micro_batch} lora={config.model.lora.rank} kl={_KL.value} "
        f"logp_chunk={_CHUNK.value}")
  print(f"completion lengths {len_b.min()}–{len_b.max()}, mean {len_b.mean():.1f}")
  print("| update | median s | completion columns computed | speed-up |")
  print("|---|---|---|---|")
  base = float(np.median(times["padded"]))
  for name in fns:
    sec = float(np.median(times[name]))
    print(f"| {name} | {sec:.2f} | {columns[name]} | {base / sec:.2f}x |")


def _columns(mask_bt, config, buckets: int) -> int:
  """Completion columns the gradient pass computes: rows × (cap or bucket length)."""
  t = mask_bt.shape[1]
  ends_b = np.asarray(step._row_ends(jnp.asarray(mask_bt)))  # pylint: disable=protected-access
  rows, g = config.optim.micro_batch, config.rollout.group_size
  if buckets <= 1:
    return ends_b.size * t
  lengths = np.asarray(step.bucket_lengths(t, buckets))
  unit = g if rows % g == 0 else 1
  ends_u = np.sort(ends_b.reshape(-1, unit).max(1))[::-1]
  per_micro = ends_u.reshape(-1, rows // unit).max(1)
  return int(sum(rows * lengths[np.searchsorted(lengths, e)] for e in per_micro))


if __name__ == "__main__":
  app.run(main)
