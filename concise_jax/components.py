"""What the trainer calls to run the selected components: their state, scoring and host needs.

    states = init_states(config, num_prompts)          # ComponentStates, checkpointed
    score = make_score(config)                          # (states, batch) -> (out, states, metrics)
    budget = make_budget(config)                        # (states, prompt_index_p) -> budget_p
    wanted = needs(config)                              # {need name: options of its declarer}

Each stateful component owns its state: its registration's `init(num_prompts, **options)`
builds it, and the component alone reads and changes it (a reward returns its new state; a
per-prompt budget's `init` carries the `update` run after each scored batch, as optax pairs
init and update). The trainer keeps the states in one `ComponentStates` next to the update
counter `step`, which the update advances and budget schedules read.

Host needs are the `needs=` of the selected reward, advantage and budget; an entry may be
conditional on one of the component's options, "entropy if entropy_mode=ea" (CEEH needs
entropy only in that mode).
"""
import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from concise_jax import advantages, budgets, rewards, types
from concise_jax.registry import Component


@flax.struct.dataclass
class ComponentStates:
  """The cross-step memory of the selected components, as one checkpointed pytree."""
  step: jax.Array   # [] int32 updates done: advanced by the update, read by budget schedules
  reward: Any       # the reward's own state (its `init=`), () when stateless
  budget: Any       # the budget schedule's own state, () when stateless


def options(config, kind: str) -> dict:
  """The options of the component `config.<kind>.name` selects, as plain values."""
  section = config[kind]
  value = section.get(section.name) if hasattr(section, "get") else None
  if value is None:
    return {}
  return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def _selected(config) -> list[tuple[Component, dict]]:
  """(component, options) of the selected reward, advantage and budget schedule."""
  out = [(rewards.REWARDS.component(config.reward.name), options(config, "reward")),
         (advantages.ADVANTAGES.component(config.advantage.name), options(config, "advantage"))]
  if "budget" in config:
    out.append((budgets.BUDGET_SCHEDULES.component(config.budget.name),
                options(config, "budget")))
  return out


def init_state(component: Component, num_prompts: int, **opts) -> Any:
  """`component`'s fresh state (its `init` with its defaults and `opts`), `()` if stateless."""
  if component.init is None:
    return ()
  return component.init(num_prompts, **{**_defaults(component), **opts})


def _defaults(component: Component) -> dict:
  return {name: opt.default for name, opt in component.options.items()}


def init_states(config, num_prompts: int) -> ComponentStates:
  """Fresh state of the selected reward and budget for a dataset of `num_prompts` prompts."""
  reward = rewards.REWARDS.component(config.reward.name)
  budget = budgets.BUDGET_SCHEDULES.component(config.budget.name)
  return ComponentStates(step=jnp.zeros((), jnp.int32),
                         reward=init_state(reward, num_prompts, **options(config, "reward")),
                         budget=init_state(budget, num_prompts, **options(config, "budget")))


def bind(component: Component, opts: dict, **static) -> Callable:
  """`component.fn` with its options and the static arguments it declares bound."""
  given = {k: v for k, v in static.items() if k in component.static}
  return functools.partial(component.fn, **given, **opts)


def make_score(config) -> Callable:
  """(states, batch) -> (RewardOutput, states, metrics): the reward on its own state, then the
  per-prompt budget's update (if the schedule has one) on the budget's state."""
  static = {"group_size": config.rollout.group_size,
            "max_new_tokens": config.rollout.max_new_tokens}
  reward_fn = bind(rewards.REWARDS.component(config.reward.name), options(config, "reward"),
                   **static)
  budget = budgets.BUDGET_SCHEDULES.component(config.budget.name)
  update = getattr(budget.init, "update", None)
  budget_update = (None if update is None else
                   functools.partial(update, **static, **options(config, "budget")))

  def score(states: ComponentStates, batch: types.Rollout):
    out, reward_state, metrics = reward_fn(batch, states.reward)
    budget_state = states.budget if budget_update is None else budget_update(states.budget,
                                                                              batch)
    return out, states.replace(reward=reward_state, budget=budget_state), metrics

  return score


def make_budget(config) -> Callable:
  """(states, prompt_index_p) -> [P] int32 decode budgets of the selected schedule."""
  schedule = bind(budgets.BUDGET_SCHEDULES.component(config.budget.name),
                  options(config, "budget"), max_new_tokens=config.rollout.max_new_tokens)
  return lambda states, prompt_index_p: schedule(states.step, states.budget, prompt_index_p)


def _condition_holds(condition: str, opts: dict) -> bool:
  """"key=value" against the component's option (compared as text); "" always holds."""
  if not condition:
    return True
  key, _, value = condition.partition("=")
  return str(opts.get(key.strip())) == value.strip()


def needs(config) -> dict[str, dict]:
  """{need name: options of the component that declared it}, in declaration order, for the
  selected components; a conditional need ("entropy if entropy_mode=ea") counts only when
  its condition holds. The first declarer's options win (they configure the provider)."""
  out = {}
  for component, opts in _selected(config):
    opts = {**_defaults(component), **opts}
    for entry in component.needs:
      name, _, condition = entry.partition(" if ")
      if _condition_holds(condition, opts):
        out.setdefault(name.strip(), opts)
  return out
