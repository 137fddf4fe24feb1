r"""Where one speculative round's time goes at small batch: draft steps, verification, the rest.

    python experiments/profile_speculative_round.py --draft=/tmp/draft [--batch=1] [--k=2,4]

Builds the speculative sampler's real state after the prompt (SmolLM2-135M, word-problem
prompts, the draft head of a `python -m concise_jax.draft` directory, reduced vocabulary) and
times, each jitted on its own and called --repeats times (median ms):
  * a plain decode step (the plain sampler's ms per token over 64 greedy tokens);
  * `verification.verify` of a W-token block (W = 1, 2, 3, 5) over that cache;
  * one draft step (`EagleDrafter.step`) and the draft's commit of a W-token block;
  * one whole round (`speculative._round`) for each k, called alone.
The round's parts should add up to the round; what they do not explain is glue (acceptance,
emission, cache bookkeeping). Speed-up = tokens per round / (round ms / plain step ms).

With --matmul_rows=1,3,5,8 it only times XLA:CPU's matmul at a few rows: a chain of 60
[M, 576] @ [576, 1536] products as one dot each against M matrix-vector products each.
"""
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from concise_jax import data, models
from concise_jax.draft import EagleDrafter, checkpoint
from concise_jax.models import transformer
from concise_jax.models import verification as V
from concise_jax.rollout import sampler as S
from concise_jax.rollout import speculative as SP
from concise_jax.rollout.generate import chat_ids, left_pad

_DRAFT = flags.DEFINE_string("draft", None, "Draft head directory.")
_BATCH = flags.DEFINE_integer("batch", 1, "Rows.")
_KS = flags.DEFINE_string("k", "2,4", "Draft lengths of the whole-round timings.")
_VOCAB = flags.DEFINE_integer("vocab", 8192, "Reduced draft vocabulary (0 = full).")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Calls per timing (median reported).")
_MATMUL_ROWS = flags.DEFINE_string("matmul_rows", "", "Only the few-row matmul timing, e.g. 1,3,5.")


def _ms(fn, *args):
  jax.block_until_ready(fn(*args))          # compile and warm
  times = []
  for _ in range(_REPEATS.value):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(1000 * (time.perf_counter() - t0))
  return statistics.median(times)


def few_row_matmul(rows):
  """ms of 60 chained [M, 576] @ [576, 1536] products: one dot vs M matrix-vector products."""
  ws = [jax.random.normal(jax.random.key(i), (576, 1536)) for i in range(60)]

  def one_dot(x, ws):
    for w in ws:
      x = jnp.tanh(x @ w)[..., :576]
    return x

  def per_row(x, ws):
    for w in ws:
      x = jnp.tanh(jnp.stack([x[i] @ w for i in range(x.shape[0])]))[..., :576]
    return x

  for m in rows:
    x = jnp.ones((m, 576))
    print(f"M={m}: one dot {_ms(jax.jit(one_dot), x, ws):.1f} ms, {m} matrix-vector products "
          f"{_ms(jax.jit(per_row), x, ws):.1f} ms")


def main(argv):
  del argv
  if _MATMUL_ROWS.value:
    return few_row_matmul([int(m) for m in _MATMUL_ROWS.value.split(",")])
  if not _DRAFT.value:
    raise app.UsageError("--draft is required (or --matmul_rows)")
  cfg, params, tok = models.load("smollm2-135m-instruct")
  exs = data.load_dataset("task:word_problems", split="test", n=_BATCH.value, seed=1)
  ids = [chat_ids(tok, data.add_instruction(e, "step_by_step")) for e in exs]
  tokens, mask = left_pad(ids, tok.pad_id, bucket=64)
  tokens, mask = jnp.asarray(tokens), jnp.asarray(mask)
  drafter = EagleDrafter(cfg)
  dp = checkpoint.load(_DRAFT.value, _VOCAB.value)
  t = 64
  sp = S.SamplingParams(max_new_tokens=t, temperature=0.0, eos_ids=(), pad_id=tok.pad_id)
  plain = jax.jit(lambda p, tk, m: S.sample(cfg, p, tk, m, jax.random.key(0), sp))
  step_ms = _ms(plain, params, tokens, mask) / t
  print(f"batch {_BATCH.value}, vocab {_VOCAB.value or 'full'}, median of {_REPEATS.value}")
  print(f"plain sampler: {step_ms:.1f} ms per decode step (64 greedy tokens, prefill included)")
  loop_params = transformer.unstack_layers(params)
  for k in [int(x) for x in _KS.value.split(",")]:
    spec = SP.SpecParams(num_draft=k)
    b = tokens.shape[0]
    state = jax.jit(lambda p, d, tk, m, spec=spec: SP.init_state(
        cfg, drafter, p, d, tk, m, jax.random.key(0), sp, spec, 1,
        jnp.full((b,), t, jnp.int32)))(params, dp, tokens, mask)
    prepared = jax.jit(drafter.prepare)(dp, loop_params)
    w = k + 1
    rnd = jax.jit(lambda lp, d, st, k=k: SP._round(  # pylint: disable=protected-access
        cfg, drafter, lp, d, sp, k, jax.random.key(0), jnp.full((b,), t, jnp.int32), st))
    round_ms = _ms(rnd, loop_params, prepared, state)
    verify = jax.jit(lambda p, tk, c: V.verify(cfg, p, tk, c)[:2])
    block = jnp.zeros((b, w), jnp.int32) + tok.pad_id
    verify_ms = _ms(verify, loop_params, block, state.cache)   # layers sliced, as in the loop
    dstep = jax.jit(lambda d, lp, ds: drafter.step(d, lp, ds, jnp.zeros((b,), jnp.int32)))
    draft_ms = _ms(dstep, prepared, loop_params, state.dstate)
    feat = jnp.zeros((b, w, cfg.d_model), jnp.float32)
    dcommit = jax.jit(lambda d, lp, ds: drafter.commit(d, lp, ds, block, feat,
                                                       jnp.ones((b,), jnp.int32)))
    commit_ms = _ms(dcommit, prepared, loop_params, state.dstate)
    parts = verify_ms + (k - 1) * draft_ms + commit_ms
    print(f"k={k}: round {round_ms:.1f} ms = {round_ms / step_ms:.2f} plain steps | verify W={w} "
          f"{verify_ms:.1f} | draft step {draft_ms:.1f} x {k - 1} | draft commit {commit_ms:.1f}"
          f" | rest {round_ms - parts:.1f}")


if __name__ == "__main__":
  app.run(main)
