"""T-PPO's slot scheduler (arXiv:2506.15050): windowed decoding with group refill.

A fixed number of decode rows, G per group (the G samples of one prompt). Each `step`:

  1. admits the next prompts of the stream into free groups (prefilling only those rows),
  2. advances every live row by W tokens (`rollout.windowed.advance`),
  3. scores each group whose G rows have all ended, once (group-relative rewards need all G),
     emits it and frees its slots for the next step's admissions.

Rows still generating stay alive across steps (and across policy updates). The buffer (slot
table, decode state, stream position) is one pytree of static-shaped arrays, so a checkpoint
taken between steps resumes exactly.

Kept cache vs re-prefill after an update (`refresh`). Keeping a row's KV cache across an update
makes its next tokens condition on keys/values of the previous policy (stale by one update; the
sampled tokens' log-probs are still recomputed by the learner, so the importance ratio covers
the token distribution but not this context mismatch). `refresh="reprefill"` rebuilds every
row's cache under the new params before the window: exact, at the cost of one full forward
over [rows, S + T] per update. Measured by experiments/bench_tppo.py on the tiny model (32
rows, S = 16, T = 256, CPU with 1 device, two runs): re-prefilling every row cost 130–240 ms
against 15 ms for a window of W = 8 decode steps (14x), 22–28 ms for W = 16 (8–10x), 22 ms for
W = 32 (6x) and 100 ms for W = 64 (2.4x). With an update after every window, re-prefill would
multiply decode time by 3.4–15x, so the default is `keep`: the staleness is one update, and
T-PPO continues alive rows under the updated policy by design. `reprefill` stays as the exact
option (tested to continue identically when params do not change).
"""
import dataclasses
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import sharding
from concise_jax.models.config import ModelConfig
from concise_jax.rollout import sampler, slots, windowed
from concise_jax.rollout.generate import left_pad

REFRESH_CHOICES = ("keep", "reprefill")


@flax.struct.dataclass
class Buffer:
  """Everything the scheduler carries between steps (part of the train state)."""
  table: slots.SlotTable
  decode: windowed.WindowState
  stream_pos: jax.Array      # [] int32 prompts taken from the stream so far


@dataclasses.dataclass
class Prompt:
  tokens: list[int]
  budget: int | None = None  # per-prompt max new tokens (None: sp.max_new_tokens)


@dataclasses.dataclass
class Completed:
  """One scored group: the G completions of a prompt, as numpy arrays."""
  prompt_id: int
  out: sampler.SampleOutput  # [G, ...] rows
  rewards_g: np.ndarray
  group_index: int = -1      # its slot group: decode rows group_index·G … (group_index+1)·G − 1


@jax.jit
def _record_window(table: slots.SlotTable, before_s: jax.Array,
                   decode: windowed.WindowState) -> tuple[slots.SlotTable, jax.Array]:
  """The slot table after a window, and the groups it completed (one dispatch: op-by-op
  bookkeeping cost ~30 ms per window on a loaded CPU)."""
  table = slots.advance(table, decode.length_b - before_s, decode.done_b)
  return table, slots.complete_g(table)


_admit_table = jax.jit(slots.admit)
_release = jax.jit(slots.release)
_free_g = jax.jit(slots.free_g)
_outputs = jax.jit(windowed.outputs, static_argnames=("sp",))


def _bucket(n: int, cap: int) -> int:
  """Admission batch size: n rounded up to a power of two (few compiled shapes), <= cap."""
  return min(cap, 1 << max(n - 1, 0).bit_length())


@dataclasses.dataclass
class SlotScheduler:
  """Host loop over the jitted windowed decoder.

  Args:
    source: prompt id -> Prompt, or None past the end of the stream.
    score: (prompt id, the group's SampleOutput as numpy [G, ...]) -> rewards [G]; called
      exactly once per completed group.
  """
  cfg: ModelConfig
  sp: sampler.SamplingParams
  num_groups: int
  group_size: int
  prompt_len: int
  window: int
  source: Callable[[int], Prompt | None]
  score: Callable[[int, sampler.SampleOutput], np.ndarray]
  refresh: str = "keep"
  layout: sharding.Layout | None = None

  def __post_init__(self):
    if self.refresh not in REFRESH_CHOICES:
      raise ValueError(f"refresh={self.refresh!r}; choose from {REFRESH_CHOICES}")
    # The last window's (tokens generated, decode row-steps run): its slot utilisation.
    self.last_window = (0, 0)

  def init(self) -> Buffer:
    return Buffer(table=slots.init_slots(self.num_groups, self.group_size),
                  decode=windowed.init_state(self.cfg, self.num_groups * self.group_size,
                                             self.prompt_len, self.sp),
                  stream_pos=jnp.zeros((), jnp.int32))

  def _admit(self, params, buf: Buffer) -> Buffer:
    free_g = np.flatnonzero(np.asarray(_free_g(buf.table)))
    pos = int(buf.stream_pos)
    prompts = []
    for i in range(pos, pos + len(free_g)):
      prompt = self.source(i)
      if prompt is None:
        break
      prompts.append(prompt)
    if not prompts:
      return buf
    candidates = np.full((self.num_groups,), -1, np.int32)
    candidates[:len(prompts)] = np.arange(pos, pos + len(prompts))
    table, _ = _admit_table(buf.table, jnp.asarray(candidates))
    p = _bucket(len(prompts), self.num_groups)
    tokens, mask = left_pad([q.tokens for q in prompts] + [[]] * (p - len(prompts)),
                                     self.sp.pad_id, bucket=self.prompt_len)
    if tokens.shape[1] != self.prompt_len:
      raise ValueError(f"a prompt is longer than prompt_len={self.prompt_len}")
    group_p = np.full((p,), self.num_groups, np.int32)       # past the end: skipped
    group_p[:len(prompts)] = free_g[:len(prompts)]
    budget_p = np.full((p,), self.sp.max_new_tokens, np.int32)
    budget_p[:len(prompts)] = [self.sp.max_new_tokens if q.budget is None else q.budget
                               for q in prompts]
    decode = windowed.admit(self.cfg, params, buf.decode, jnp.asarray(tokens), jnp.asarray(mask),
                            jnp.asarray(group_p), self.sp, group_size=self.group_size,
                            budget_p=jnp.asarray(budget_p), layout=self.layout)
    return buf.replace(table=table, decode=decode, stream_pos=buf.stream_pos + len(prompts))

  def step(self, params, buf: Buffer, key: jax.Array,
           updated: bool = False) -> tuple[Buffer, list[Completed]]:
    """One window: admit, advance, score and free the completed groups.

    `updated`: params changed since the last step (re-prefills alive rows if refresh says so).
    """
    decode = buf.decode
    if updated and self.refresh == "reprefill":
      decode = windowed.reprefill(self.cfg, params, decode)
    buf = self._admit(params, buf.replace(decode=decode))
    before_s = jnp.copy(buf.decode.length_b)       # the advance donates the decode state
    buf_steps = int(buf.decode.steps)
    decode = windowed.advance(self.cfg, params, buf.decode, key, self.sp, window=self.window,
                              layout=self.layout)
    table, done_g = _record_window(buf.table, before_s, decode)
    done_g = np.asarray(done_g)
    steps_run = int(decode.steps) - int(buf_steps)
    self.last_window = (int(np.asarray(decode.length_b - before_s).sum()),
                        steps_run * int(before_s.shape[0]))
    emitted = []
    if done_g.any():
      out = jax.device_get(_outputs(decode, self.sp))
      prompt_g = np.asarray(table.prompt_index_g)
      g = self.group_size
      for gi in np.flatnonzero(done_g):
        rows = jax.tree.map(lambda x, gi=gi: x[gi * g:(gi + 1) * g], out)
        pid = int(prompt_g[gi])
        emitted.append(Completed(prompt_id=pid, out=rows,
                                 rewards_g=np.asarray(self.score(pid, rows)),
                                 group_index=int(gi)))
    table = _release(table, jnp.asarray(done_g))
    return buf.replace(table=table, decode=decode), emitted

  def drained(self, buf: Buffer) -> bool:
    """No group holds a prompt and the stream has none left."""
    return bool(np.asarray(_free_g(buf.table)).all()) and (
        self.source(int(buf.stream_pos)) is None)
