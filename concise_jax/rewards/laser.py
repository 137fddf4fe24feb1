"""LASER / LASER-D / LASER-DE — adaptive length-based step reward (Liu et al., arXiv:2505.15612).

A step function: correct answers within a target length L_T get a bonus α. LASER-D picks the
target per group from its accuracy band. Its state (`init_band_targets`) is the three band
targets [3] float32 (order low, medium, high), re-estimated every `monitor_freq` steps from
extra rollouts on a fixed monitor set: the reward declares the host need "band_monitor", whose
host routine (`train.host_features.refresh_band_targets`) calls `band_targets_from_monitor`.
LASER-DE also rewards wrong, long, non-repetitive answers, to keep exploring on hard prompts;
it declares "repetitive" (the host's n-gram detector, configured by its `ngram` /
`min_repeats` options).
"""
import jax
import jax.numpy as jnp

from concise_jax import types
from concise_jax.rewards.base import REWARDS

LENGTH_REWARD_TYPES = ("reward", "penalty", "hybrid")


def base_reward_b(batch: types.Rollout, correct_reward: float, wrong_reward: float,
                  no_answer_reward: float) -> jax.Array:
  """Laser's C: +1 correct, −0.5 wrong, −1 without a final answer (format_ok false).

  Inferred: our verifier may accept an answer without the marker, so a correct answer is +1
  whatever its format (Laser's "no boxed answer" check could not fire on it there).
  """
  c_b = jnp.where(batch.format_ok_b, wrong_reward, no_answer_reward)
  return jnp.where(batch.correct_b, correct_reward, c_b).astype(jnp.float32)


def length_term_b(correct_b: jax.Array, within_b: jax.Array, alpha: float,
                  length_reward_type: str) -> jax.Array:
  """α·I(correct)·I(L ≤ L_T) ("reward"), −α·I(correct)·I(L > L_T) ("penalty"), or ±α ("hybrid")."""
  if length_reward_type == "reward":
    s_b = jnp.where(within_b, alpha, 0.0)
  elif length_reward_type == "penalty":
    s_b = jnp.where(within_b, 0.0, -alpha)
  elif length_reward_type == "hybrid":
    s_b = jnp.where(within_b, alpha, -alpha)
  else:
    raise ValueError(f"unknown length_reward_type {length_reward_type!r}; "
                     f"valid choices: {', '.join(LENGTH_REWARD_TYPES)}")
  return jnp.where(correct_b, s_b, 0.0)


def band_b(correct_b: jax.Array, group_size: int) -> jax.Array:
  """[B] int32 accuracy band of the current group: 0 low (p < 1/3), 1 medium, 2 high (p ≥ 2/3).

  Compared in counts (3·#correct vs G) so p = 2/3 lands in "high" without float rounding.
  """
  n_p = types.to_groups(correct_b.astype(jnp.int32), group_size).sum(axis=1)
  band_p = (3 * n_p >= group_size).astype(jnp.int32) + (3 * n_p >= 2 * group_size)
  return jnp.repeat(band_p, group_size)


def init_band_targets(num_prompts: int, **options) -> jax.Array:
  """[3] float32 (low, medium, high) targets, 0 = unset (no limit until the first monitor)."""
  del num_prompts, options
  return jnp.zeros((3,), jnp.float32)


def band_target_b(targets: jax.Array, band_b_: jax.Array) -> jax.Array:
  """[B] float32 target of each row's band; +inf while the band's target is unset (≤ 0).

  Inferred: before the first monitor pass there is no limit (the host runs one at step 0).
  """
  t_b = targets[band_b_]
  return jnp.where(t_b > 0, t_b, jnp.inf)


def band_targets_from_monitor(length_mn: jax.Array, correct_mn: jax.Array, *, grid_lower: int,
                              grid_upper: int, grid_step: int, expected_correct: int,
                              max_len: int, correct_only: bool = False) -> jax.Array:
  """[3] float32 new (low, medium, high) targets from M monitor prompts × n samples.

  Bands on the monitor set: low if acc ≤ 1/3, medium if ≤ 2/3, high otherwise. cov_b(Lc) =
  share of ALL monitor responses of band b with length ≤ Lc (Laser's code, not only correct
  ones); K_b = ⌊2n/3⌋ | ⌊n/3⌋ | 1 (high | medium | low); L_T[b] = the smallest Lc of the grid
  range(grid_lower, grid_upper + 1, grid_step) with ⌊cov_b(Lc)·K_b⌋ ≥ expected_correct, else
  `max_len`. An empty band gets `max_len`.

  `correct_only=True` counts only correct responses ≤ Lc in cov_b (still over all responses of
  the band): our reading of the paper's "expected correct responses" (the code counts all
  responses; the code's form is the default).
  """
  n = length_mn.shape[1]
  n_m = correct_mn.astype(jnp.int32).sum(axis=1)
  band_m = (3 * n_m > n).astype(jnp.int32) + (3 * n_m > 2 * n)      # 0 low, 1 medium, 2 high
  onehot_mk = jax.nn.one_hot(band_m, 3, dtype=jnp.float32)
  grid_c = jnp.arange(grid_lower, grid_upper + 1, grid_step, dtype=jnp.float32)
  within_mnc = length_mn[:, :, None] <= grid_c[None, None, :]
  if correct_only:
    within_mnc = within_mnc & correct_mn.astype(bool)[:, :, None]
  within_mc = within_mnc.sum(axis=1).astype(jnp.float32)
  covered_kc = jnp.einsum("mk,mc->kc", onehot_mk, within_mc)
  total_k1 = (onehot_mk.sum(axis=0) * n)[:, None]
  cov_kc = covered_kc / jnp.maximum(total_k1, 1.0)
  k_k1 = jnp.asarray([1, n // 3, (2 * n) // 3], jnp.float32)[:, None]
  ok_kc = (jnp.floor(cov_kc * k_k1) >= expected_correct) & (total_k1 > 0)
  first_k = jnp.argmax(ok_kc, axis=1)
  return jnp.where(ok_kc.any(axis=1), grid_c[first_k], float(max_len)).astype(jnp.float32)


@REWARDS.register("laser")
def laser(batch: types.Rollout, state: tuple, *, group_size: int,
          target_length: int = 4096, alpha: float = 0.5, length_reward_type: str = "reward",
          correct_reward: float = 1.0, wrong_reward: float = -0.5,
          no_answer_reward: float = -1.0):
  """LASER: r[i] = C[i] + α·I(correct)·I(L ≤ L_T), fixed L_T (arXiv:2505.15612).

  Args:
    batch: reads correct_b, format_ok_b, length_b.
    state: returned unchanged.
    group_size: unused (uniform signature).
    target_length: L_T in tokens (paper: 2048 / 4096 / 8192).
    alpha: bonus α (0.5).
    length_reward_type: "reward" (paper), "penalty" or "hybrid" (code variants).
    correct_reward, wrong_reward, no_answer_reward: C (+1, −0.5, −1).

  Returns:
    (RewardOutput with rewards_b, state, {"laser/within_frac": share with L ≤ L_T}).
  """
  del group_size
  within_b = batch.length_b <= target_length
  r_b = (base_reward_b(batch, correct_reward, wrong_reward, no_answer_reward)
         + length_term_b(batch.correct_b, within_b, alpha, length_reward_type))
  return types.make_reward_output(batch, r_b), state, {
      "laser/within_frac": within_b.astype(jnp.float32).mean()}


def _laser_d_rewards(batch, state, group_size, alpha, length_reward_type, correct_reward,
                     wrong_reward, no_answer_reward):
  band = band_b(batch.correct_b, group_size)
  target_b = band_target_b(state, band)
  within_b = batch.length_b <= target_b
  c_b = base_reward_b(batch, correct_reward, wrong_reward, no_answer_reward)
  r_b = c_b + length_term_b(batch.correct_b, within_b, alpha, length_reward_type)
  metrics = {f"laser/target_{name}": state[k]
             for k, name in enumerate(("low", "medium", "high"))}
  return r_b, within_b, band, metrics


@REWARDS.register("laser_d", init=init_band_targets, needs=("band_monitor",))
def laser_d(batch: types.Rollout, state: jax.Array, *, group_size: int,
            alpha: float = 0.5, length_reward_type: str = "reward", correct_reward: float = 1.0,
            wrong_reward: float = -0.5, no_answer_reward: float = -1.0, monitor_freq: int = 20,
            monitor_prompts: int = 500, monitor_samples: int = 8, grid_lower: int = 4096,
            grid_upper: int = 16384, grid_step: int = 1024, expected_correct: int = 1,
            correct_only: bool = False):
  """LASER-D: the target comes from the group's accuracy band (arXiv:2505.15612).

  r[i] = C[i] + α·I(correct)·I(L ≤ L_T[band(g)]) with band(g) = high if p ≥ 2/3, medium if
  1/3 ≤ p < 2/3, low otherwise, and L_T = the state. The monitor knobs configure the host
  routine of the "band_monitor" need; the reward itself never changes the targets.

  Args:
    batch: reads correct_b, format_ok_b, length_b.
    state: the band targets [3] (low, medium, high); returned unchanged.
    group_size: G (static).
    alpha, length_reward_type, correct_reward, wrong_reward, no_answer_reward: as `laser`.
    monitor_freq: steps between target updates (20).
    monitor_prompts: size of the fixed monitor set, the first training prompts (500).
    monitor_samples: n rollouts per monitor prompt (Inferred: 8, the training G).
    grid_lower, grid_upper, grid_step: the target grid in tokens (4096, 16384, 1024).
    expected_correct: K_exp (1).
    correct_only: coverage counts correct responses only (see `band_targets_from_monitor`).

  Returns:
    (RewardOutput with rewards_b, state, metrics: laser/within_frac, laser/target_*).
  """
  del monitor_freq, monitor_prompts, monitor_samples, grid_lower, grid_upper, grid_step
  del expected_correct, correct_only  # configure the host's band monitor
  r_b, within_b, _, metrics = _laser_d_rewards(batch, state, group_size, alpha,
                                               length_reward_type, correct_reward,
                                               wrong_reward, no_answer_reward)
  metrics["laser/within_frac"] = within_b.astype(jnp.float32).mean()
  return types.make_reward_output(batch, r_b), state, metrics


@REWARDS.register("laser_de", init=init_band_targets, needs=("band_monitor", "repetitive"))
def laser_de(batch: types.Rollout, state: jax.Array, *, group_size: int,
             alpha: float = 0.5, length_reward_type: str = "reward", correct_reward: float = 1.0,
             wrong_reward: float = -0.5, no_answer_reward: float = -1.0, monitor_freq: int = 20,
             monitor_prompts: int = 500, monitor_samples: int = 8, grid_lower: int = 4096,
             grid_upper: int = 16384, grid_step: int = 1024, expected_correct: int = 1,
             correct_only: bool = False, ngram: int = 20, min_repeats: int = 3):
  """LASER-DE: LASER-D plus α for wrong, long, non-repetitive answers (arXiv:2505.15612).

  r[i] += α if C[i] = wrong_reward (a wrong answer WITH an answer) and L > L_T[band] and not
  repetitive[i]. `ngram` / `min_repeats` configure the host provider of the "repetitive" need
  (`train.host_features.is_repetitive`; Inferred: the paper's detector is not specified).

  Args:
    batch: reads correct_b, format_ok_b, length_b, features["repetitive"] [B] bool.
    state: the band targets [3]; returned unchanged.
    group_size: G (static).
    ngram, min_repeats: a row is repetitive if some `ngram`-token window occurs ≥ `min_repeats`
      times (host side).
    other args: as `laser_d`.

  Returns:
    (RewardOutput with rewards_b, state, metrics: laser/explore_frac, laser/target_*).
  """
  del monitor_freq, monitor_prompts, monitor_samples, grid_lower, grid_upper, grid_step
  del expected_correct, correct_only, ngram, min_repeats  # configure the host's providers
  repetitive_b = types.feature(batch, "repetitive", "reward 'laser_de'")
  r_b, within_b, _, metrics = _laser_d_rewards(batch, state, group_size, alpha,
                                               length_reward_type, correct_reward,
                                               wrong_reward, no_answer_reward)
  wrong_with_answer_b = ~batch.correct_b & batch.format_ok_b
  explore_b = wrong_with_answer_b & ~within_b & ~repetitive_b.astype(bool)
  r_b = r_b + jnp.where(explore_b, alpha, 0.0)
  metrics["laser/explore_frac"] = explore_b.astype(jnp.float32).mean()
  return types.make_reward_output(batch, r_b), state, metrics
