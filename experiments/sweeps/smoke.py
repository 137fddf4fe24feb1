"""Smoke sweep (CI): the tiny model, two methods × one seed, two steps each — checks that a
sweep runs, skips finished runs and resumes interrupted ones.

  python -m concise_jax.sweep --sweep=experiments/sweeps/smoke.py --root=/tmp/sweeps \
      --results=/tmp/sweep_results
"""
import ml_collections


def get_config():
  s = ml_collections.ConfigDict()
  s.study = "smoke"
  s.base = "configs/grpo.py:model=tiny,runlocal"
  s.common = ("train.steps=2", "train.ckpt_every=1", "eval.every=2")
  s.runs = {"grpo": (), "dler": ("reward.name=dler", "reward.dler.max_len=12")}
  s.seeds = (0,)
  return s
