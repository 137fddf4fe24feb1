"""A tiny name → function registry; configs pick variants by these names."""
from typing import Callable


class Registry:
  """Maps names to functions for one category (rewards, losses, ...)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._fns: dict[str, Callable] = {}

  def register(self, name: str):
    """Decorator adding `fn` under `name`; a duplicate name is a bug, so it raises."""
    def add(fn):
      if name in self._fns:
        raise KeyError(f"{self.kind} {name!r} registered twice")
      self._fns[name] = fn
      return fn
    return add

  def get(self, name: str) -> Callable:
    """Returns the function for `name`; an unknown name lists the valid ones."""
    try:
      return self._fns[name]
    except KeyError:
      raise KeyError(
          f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}") from None

  def names(self) -> list[str]:
    return sorted(self._fns)

  def __contains__(self, name: str) -> bool:
    return name in self._fns
