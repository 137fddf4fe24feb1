"""Name → component registries; configs pick variants by these names.

A component is a registered function plus what the trainer must know to run it, declared once
at the registration line:

    @REWARDS.register("hapo_linear", init=init_history, needs=("entropy",))
    def hapo_linear(batch, state, *, group_size: int, length_weight: float = 1.0, ...):

- **options**: the keyword-only parameters with defaults. Their defaults and annotations are
  the one place an option is defined; the config section is built from them (`options`).
- **static**: keyword-only parameters without defaults (`group_size`, `max_new_tokens`): the
  call site binds them from the rollout config; they are never user options.
- **init**: `init(num_prompts, **options) -> state pytree` for a stateful component (its own
  memory, as an optax transform owns its state); None for a stateless one.
- **needs**: names of per-row inputs the host or sampler must provide in `Rollout.features`
  (e.g. "entropy", "repetitive"), served generically by the trainer; "entropy if
  entropy_mode=ea" counts only when the component's option has that value
  (`components.needs`).
"""
import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Option:
  """One user-facing option: its default and the type a config value must have."""
  name: str
  default: Any
  type: Any                 # the annotation (e.g. int, float | None, tuple[float, ...])

  @property
  def optional(self) -> bool:
    """None is a valid value (`int | None`)."""
    return type(None) in typing.get_args(self.type)

  @property
  def base_type(self) -> Any:
    """The annotation without None: `int | None` → int."""
    args = [a for a in typing.get_args(self.type) if a is not type(None)]
    if typing.get_origin(self.type) in (typing.Union, getattr(__import__("types"), "UnionType")):
      return args[0] if len(args) == 1 else self.type
    return self.type


@dataclasses.dataclass(frozen=True)
class Component:
  """A registered function with its declared options, state and host needs."""
  kind: str
  name: str
  fn: Callable
  init: Callable[..., Any] | None = None
  needs: tuple[str, ...] = ()

  @property
  def options(self) -> dict[str, Option]:
    """Keyword-only parameters with a default, in signature order."""
    hints = typing.get_type_hints(self.fn)
    out = {}
    for p in inspect.signature(self.fn).parameters.values():
      if p.kind is p.KEYWORD_ONLY and p.default is not p.empty:
        out[p.name] = Option(p.name, p.default, hints.get(p.name, type(p.default)))
    return out

  @property
  def static(self) -> tuple[str, ...]:
    """Keyword-only parameters without a default: bound by the call site, not by users."""
    return tuple(p.name for p in inspect.signature(self.fn).parameters.values()
                 if p.kind is p.KEYWORD_ONLY and p.default is p.empty)

  @property
  def stateful(self) -> bool:
    return self.init is not None


class Registry:
  """Maps names to components for one category (rewards, losses, ...)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._components: dict[str, Component] = {}

  def register(self, name: str, *, init: Callable | None = None, needs: tuple[str, ...] = ()):
    """Decorator adding `fn` under `name`; a duplicate name is a bug, so it raises."""
    def add(fn):
      if name in self._components:
        raise KeyError(f"{self.kind} {name!r} registered twice")
      self._components[name] = Component(self.kind, name, fn, init, tuple(needs))
      return fn
    return add

  def component(self, name: str) -> Component:
    """The component for `name`; an unknown name lists the valid ones."""
    try:
      return self._components[name]
    except KeyError:
      raise KeyError(
          f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}") from None

  def get(self, name: str) -> Callable:
    """The function for `name`; an unknown name lists the valid ones."""
    return self.component(name).fn

  def names(self) -> list[str]:
    return sorted(self._components)

  def __contains__(self, name: str) -> bool:
    return name in self._components
