"""Rewards: registry `REWARDS`; importing every module of the package runs its registrations,
so a new reward is one module here (no edit to this file)."""
import importlib
import pkgutil

from concise_jax.rewards.base import REWARDS

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
  importlib.import_module(f"{__name__}.{_module}")

__all__ = ["REWARDS"]
