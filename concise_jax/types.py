"""Pytree dataclasses shared by rollout, reward, advantage, filter and loss.

Batch layout: every per-sample leaf has a leading axis B = P·G with the G samples of one prompt
stored contiguously, so group statistics are a reshape to [P, G] (`to_groups`). Suffix letters
follow the house vocabulary (B, P, G, T, S); stateful components add N = number of prompts in
the dataset, for their per-prompt tables (indexed by `Rollout.prompt_index_b`). Heads never
appear in these types, so the letter is unambiguous here.

Inputs the trainer itself fills (prompt tokens, reference / teacher log-probs, a stated budget)
are typed fields defaulting to None. Inputs a method asks of the host or the sampler live in
`Rollout.features`, keyed by the need name the method declared at its registration
(`needs=("repetitive",)`): only the selected methods' needs are computed, and a new method's
feature adds no field here. A None field or an absent key adds no leaf to the pytree.
"""
import dataclasses

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
  budget_b: jax.Array | None = None            # [B] int32 prompt-stated budget (L1), -1 if none
  # Host / sampler features the selected methods declared (`needs=`), by need name; each
  # provider documents its arrays (`train.host_features.PROVIDERS`), e.g. "entropy" [B, T]
  # float32, "repetitive" [B] bool. Read them with `feature(batch, name, reader)`.
  features: dict[str, jax.Array] = dataclasses.field(default_factory=dict)

  @property
  def batch_size(self) -> int:
    return self.mask_bt.shape[0]


def feature(batch: Rollout, name: str, reader: str) -> jax.Array:
  """`batch.features[name]`, or an error naming the method that should have declared it."""
  if name not in batch.features:
    raise ValueError(f"{reader} needs Rollout.features[{name!r}]: declare it in the "
                     f"registration (needs=({name!r},)) so the trainer provides it")
  return batch.features[name]


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

  CEEH's entropy advantage (arXiv:2602.22642) needs A itself, so the reward
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
