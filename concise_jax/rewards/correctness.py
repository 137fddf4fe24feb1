"""Length-agnostic outcome rewards: verifier correctness, optionally with a format bonus."""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS


def outcome_b(correct_b: jax.Array, correct_reward: float, wrong_reward: float) -> jax.Array:
  """[B] bool → [B] float32: `correct_reward` where correct, else `wrong_reward`."""
  return jnp.where(correct_b, correct_reward, wrong_reward).astype(jnp.float32)


@REWARDS.register("correctness")
def correctness(batch: types.Rollout, state: tuple, *, group_size: int,
                correct_reward: float = 1.0, wrong_reward: float = 0.0):
  """The rule-based 0/1 outcome reward of GRPO (DeepSeekMath §4.1, R1 "accuracy reward").

  r[i] = correct_reward if correct[i] else wrong_reward. Truncated or unanswered responses are
  already `correct=False` from the verifier, so they get `wrong_reward`.

  Args:
    batch: the rollout; reads `correct_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    correct_reward: reward of a correct answer (default 1).
    wrong_reward: reward of a wrong, truncated or unparsable answer (default 0).

  Returns:
    (RewardOutput with rewards_b [B] float32, state, {}).
  """
  del group_size
  return types.make_reward_output(batch, outcome_b(batch.correct_b, correct_reward,
                                                   wrong_reward)), state, {}


@REWARDS.register("correctness_format")
def correctness_format(batch: types.Rollout, state: tuple, *, group_size: int,
                       format_weight: float = 0.1):
  """0/1 correctness plus a format bonus (DeepSeek-R1 §2.2.2 "accuracy + format rewards").

  r[i] = I(correct[i]) + format_weight · I(format_ok[i]). The weight 0.1 is our choice (R1
  does not state one); with it a well-formatted wrong answer (0.1) stays far below a correct
  answer (≥ 1), and a correct answer never scores below a wrong one with the same format.

  Args:
    batch: the rollout; reads `correct_b`, `format_ok_b` [B].
    state: returned unchanged.
    group_size: unused (uniform signature).
    format_weight: bonus for a well-formed answer (default 0.1).

  Returns:
    (RewardOutput with rewards_b [B] float32, state, {"correctness_format/format_ok": mean}).
  """
  del group_size
  format_b = batch.format_ok_b.astype(jnp.float32)
  r_b = batch.correct_b.astype(jnp.float32) + format_weight * format_b
  return types.make_reward_output(batch, r_b), state, {
      "correctness_format/format_ok": format_b.mean()}
