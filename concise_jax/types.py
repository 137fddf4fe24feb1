"""Pytree dataclasses shared by rollout, reward, advantage, filter and loss.

Batch layout: every per-sample leaf has a leading axis B = P·G with the G samples of one prompt
stored contiguously, so group statistics are a reshape to [P, G] (`to_groups`). Suffix letters
follow the house vocabulary (B, P, G, T, S); this module adds one more, N = number of prompts in
the dataset, for the per-prompt tables of `RewardState` (indexed by `Rollout.prompt_index_b`).
Heads never appear in these types, so the letter is unambiguous here.

Fields a method needs beyond the core set default to None: a method that reads one fails loudly
if the rollout did not provide it, and a None field adds no leaf to the pytree.
"""
import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Rollout:
  """One batch of sampled completions plus everything host-side scoring computed for it.

  `correct_b` and `truncated_b` are raw facts (verifier result, hit the decode cap); shaped
  rewards never overwrite them, so group filters and accuracy metrics can read them.
  """
  tokens_bt: jax.Array                     # [B, T] int32 completion tokens, pad after EOS
  mask_bt: jax.Array                       # [B, T] float32 completion mask (1 on generated
                                           #   tokens incl. EOS, 0 on padding)
  length_b: jax.Array                      # [B] int32 completion tokens == mask_bt.sum(-1)
  correct_b: jax.Array                     # [B] bool raw verifier result (0 if no answer)
  format_ok_b: jax.Array                   # [B] bool answer format / think tags present
  truncated_b: jax.Array                   # [B] bool hit the rollout cap without EOS
  prompt_index_b: jax.Array                # [B] int32 dataset id of the prompt, stable over epochs
  old_logp_bt: jax.Array                   # [B, T] float32 log-probs of the sampling policy
  # --- optional inputs (None unless the configured methods need them) -------------------------
  prompt_tokens_bs: jax.Array | None = None    # [B, S] int32 left-padded prompt tokens
  prompt_mask_bs: jax.Array | None = None      # [B, S] float32 1 on real prompt tokens
  ref_logp_bt: jax.Array | None = None         # [B, T] float32 reference-policy log-probs (KL)
  teacher_logp_bt: jax.Array | None = None     # [B, T] float32 teacher / initial-policy log-probs
                                               #   (KDRL, DPH-RL; filled by the update)
  token_entropy_bt: jax.Array | None = None    # [B, T] float32 sampling-policy entropy (PEAR, CEEH)
  budget_b: jax.Array | None = None            # [B] int32 prompt-stated budget (L1), -1 if none
  think_mask_bt: jax.Array | None = None       # [B, T] float32 1 before </think> (PEAR)
  reflection_count_b: jax.Array | None = None  # [B] int32 reflection keywords (ARLCP)
  repetitive_b: jax.Array | None = None        # [B] bool repetition detected (LASER-DE)
  redundant_mask_bt: jax.Array | None = None   # [B, T] float32 judge-marked redundant tokens (DECS)
  cut_length_b: jax.Array | None = None        # [B] int32 DOT cut length (== length_b if not cut)
  cut_correct_b: jax.Array | None = None       # [B] bool verifier on the DOT-cut text (host re-check)

  @property
  def batch_size(self) -> int:
    return self.mask_bt.shape[0]


@flax.struct.dataclass
class RewardState:
  """Cross-step memory of the reward methods; every table is dataset-sized and static.

  Per-prompt tables are indexed by `Rollout.prompt_index_b`, e.g.
  `state.hist_len_n.at[batch.prompt_index_b].min(length_b)`. `hist_count_n == 0` marks a prompt
  never seen, whatever sentinel a method keeps in the other tables. `step` is advanced by the
  caller once per update; reward functions read it (schedules) but never advance it.
  """
  step: jax.Array               # [] int32 update counter
  hist_len_n: jax.Array         # [N] float32 per-prompt length memory (HAPO h, CEEH len_ref)
  hist_count_n: jax.Array       # [N] float32 times a prompt contributed to hist_len_n
  acc_ema_n: jax.Array          # [N] float32 per-prompt accuracy EMA (CEEH; -1 = unseen)
  band_targets: jax.Array       # [3] float32 LASER-D length targets (low, medium, high)
  kappa: jax.Array              # [] float32 DECS easy-group mixing ratio
  prev_ratio: jax.Array         # [] float32 DECS rho_{t-1}
  pass_rate_hist_w: jax.Array   # [W] float32 ring buffer of batch pass rates (DOT sampler)
  pass_rate_len: jax.Array      # [] int32 entries written to pass_rate_hist_w
  budget_n: jax.Array           # [N] int32 per-prompt decode budget (PALU, DA-DLER caps; -1 = unseen)

  @property
  def num_prompts(self) -> int:
    return self.hist_len_n.shape[0]


def init_reward_state(num_prompts: int, *, pass_rate_window: int = 16) -> RewardState:
  """Fresh reward memory for a dataset of `num_prompts` prompts (static shapes)."""
  return RewardState(
      step=jnp.zeros((), jnp.int32),
      hist_len_n=jnp.zeros((num_prompts,), jnp.float32),
      hist_count_n=jnp.zeros((num_prompts,), jnp.float32),
      acc_ema_n=jnp.full((num_prompts,), -1.0, jnp.float32),
      band_targets=jnp.zeros((3,), jnp.float32),
      kappa=jnp.zeros((), jnp.float32),
      prev_ratio=jnp.zeros((), jnp.float32),
      pass_rate_hist_w=jnp.zeros((pass_rate_window,), jnp.float32),
      pass_rate_len=jnp.zeros((), jnp.int32),
      budget_n=jnp.full((num_prompts,), -1, jnp.int32),
  )


@flax.struct.dataclass
class RewardOutput:
  """What a reward function hands to the filter, advantage and loss.

  Every leaf is per sample (leading axis B), so the host can gather kept groups of a
  `RewardOutput` exactly like a `Rollout`. Scalar metrics travel separately.
  """
  rewards_b: jax.Array                      # [B] float32 sequence-level outcome reward
  loss_mask_bt: jax.Array                   # [B, T] float32 multiplies into the completion mask
                                            #   (1 everywhere unless a method cuts tokens, e.g. DOT)
  group_flags_b: jax.Array                  # [B] float32 per-group flag broadcast over the group,
                                            #   for the loss/advantage (GRPO-λ: length branch on;
                                            #   CEEH: hard; DA-DLER: tier). 0 when unused.
  token_rewards_bt: jax.Array | None = None  # [B, T] float32 token-level rewards (DECS)
  adv_bonus_bt: jax.Array | None = None      # [B, T] float32 added to the advantage, capped at
                                             #   adv_bonus_cap_bt · |A| (CEEH entropy advantage)
  adv_bonus_cap_bt: jax.Array | None = None  # [B, T] float32 cap on adv_bonus_bt relative to |A|
  entropy_weight_bt: jax.Array | None = None  # [B, T] float32 per-token weight of the loss's
                                              #   entropy bonus (CEEH max-entropy mode)


def make_reward_output(batch: Rollout, rewards_b: jax.Array, **fields) -> RewardOutput:
  """`RewardOutput` with neutral defaults (no cut tokens, zero flags) for unset fields."""
  fields.setdefault("loss_mask_bt", jnp.ones_like(batch.mask_bt, jnp.float32))
  fields.setdefault("group_flags_b", jnp.zeros(rewards_b.shape, jnp.float32))
  return RewardOutput(rewards_b=rewards_b.astype(jnp.float32), **fields)


def add_advantage_bonus(adv_bt: jax.Array, reward_out: RewardOutput,
                        mask_bt: jax.Array) -> jax.Array:
  """A' = A + min(bonus, cap · |A|) on the mask, for rewards that shape the advantage per token.

  CEEH's entropy advantage (arXiv:2602.22642; rewards.md §4) needs A itself, so the reward
  cannot fold it into `rewards_b`; it hands the bonus and its |A|-relative cap over instead.
  No bonus (None) returns `adv_bt` unchanged; no cap means an uncapped bonus.
  """
  if reward_out.adv_bonus_bt is None:
    return adv_bt
  bonus_bt = reward_out.adv_bonus_bt
  if reward_out.adv_bonus_cap_bt is not None:
    bonus_bt = jnp.minimum(bonus_bt, reward_out.adv_bonus_cap_bt * jnp.abs(adv_bt))
  return adv_bt + bonus_bt * mask_bt


def to_groups(x_b: jax.Array, group_size: int) -> jax.Array:
  """[B, ...] → [P, G, ...]; valid because the G samples of a prompt are contiguous."""
  if x_b.shape[0] % group_size:
    raise ValueError(f"batch {x_b.shape[0]} is not a multiple of group_size {group_size}")
  return x_b.reshape(-1, group_size, *x_b.shape[1:])


def from_groups(x_pg: jax.Array) -> jax.Array:
  """[P, G, ...] → [B, ...], the inverse of `to_groups`."""
  return x_pg.reshape(-1, *x_pg.shape[2:])
