"""Decode-slot bookkeeping for T-PPO's successive batched generation (arXiv:2506.15050).

A fixed number of decode rows (slots) is grouped G at a time; a group holds the G samples of
one prompt. Each iteration advances every live row by up to a window of W tokens; a group
whose G rows have all finished is scored once (group-relative rewards need all G) and its
slots are refilled with the next prompt. Rows that are still generating stay ("alive") and
continue in the next window under the updated policy.

Everything here is array-valued with static shapes, so the table is part of the train state
and a checkpoint taken between windows resumes exactly. The sampler that advances rows lives
elsewhere; this module only says which slots are free, live, finished and complete.
"""
import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class SlotTable:
  """Which prompt each group of slots holds and how far each row has got."""
  prompt_index_g: jax.Array   # [NG] int32 dataset id of the group's prompt; -1 = free
  admitted_g: jax.Array       # [NG] int32 admission serial (the order prompts came in)
  length_s: jax.Array         # [NS] int32 tokens generated so far (NS = NG · G)
  finished_s: jax.Array       # [NS] bool emitted EOS or hit the cap (terminal)
  next_serial: jax.Array      # [] int32 serials handed out so far

  @property
  def group_size(self) -> int:
    return self.length_s.shape[0] // self.prompt_index_g.shape[0]


def init_slots(num_groups: int, group_size: int) -> SlotTable:
  """Every slot free."""
  ns = num_groups * group_size
  return SlotTable(prompt_index_g=jnp.full((num_groups,), -1, jnp.int32),
                   admitted_g=jnp.full((num_groups,), -1, jnp.int32),
                   length_s=jnp.zeros((ns,), jnp.int32), finished_s=jnp.zeros((ns,), bool),
                   next_serial=jnp.zeros((), jnp.int32))


def free_g(table: SlotTable) -> jax.Array:
  """[NG] bool groups with no prompt."""
  return table.prompt_index_g < 0


def admit(table: SlotTable, candidates_g: jax.Array) -> tuple[SlotTable, jax.Array]:
  """Fills free groups, in slot order, with the next candidate prompts.

  Args:
    candidates_g: [NG] int32 the next NG prompt ids of the data stream, in order.

  Returns:
    (table, number of candidates consumed): the k-th free group gets candidates_g[k]; the
    caller advances its stream by exactly that many, so no prompt is skipped or repeated.
  """
  free = free_g(table)
  rank_g = jnp.cumsum(free) - 1                       # k for the k-th free group
  taken_g = jnp.where(free, candidates_g[jnp.clip(rank_g, 0, None)], table.prompt_index_g)
  serial_g = jnp.where(free, table.next_serial + rank_g, table.admitted_g)
  new_rows_s = jnp.repeat(free, table.group_size)
  n = free.sum().astype(jnp.int32)
  return table.replace(prompt_index_g=taken_g, admitted_g=serial_g,
                       length_s=jnp.where(new_rows_s, 0, table.length_s),
                       finished_s=jnp.where(new_rows_s, False, table.finished_s),
                       next_serial=table.next_serial + n), n


def alive_s(table: SlotTable) -> jax.Array:
  """[NS] bool rows of an occupied group that are still generating."""
  occupied_s = jnp.repeat(~free_g(table), table.group_size)
  return occupied_s & ~table.finished_s


def advance(table: SlotTable, new_tokens_s: jax.Array, ended_s: jax.Array) -> SlotTable:
  """Records one window: `new_tokens_s` tokens generated per row, `ended_s` rows that ended."""
  live = alive_s(table)
  return table.replace(length_s=table.length_s + jnp.where(live, new_tokens_s, 0),
                       finished_s=table.finished_s | (live & ended_s))


def complete_g(table: SlotTable) -> jax.Array:
  """[NG] bool occupied groups whose G rows have all finished: ready to be scored."""
  done_g = table.finished_s.reshape(-1, table.group_size).all(axis=1)
  return ~free_g(table) & done_g


def release(table: SlotTable, done_g: jax.Array) -> SlotTable:
  """Frees the scored groups (their slots are refilled by the next `admit`)."""
  return table.replace(prompt_index_g=jnp.where(done_g, -1, table.prompt_index_g),
                       admitted_g=jnp.where(done_g, -1, table.admitted_g))
