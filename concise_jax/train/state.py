"""TrainState: everything an update changes, as one pytree that jit donates and orbax saves.

Frozen weights (the LoRA base model, the KL reference policy) are not in the state: they never
change, are rebuilt from the config on resume, and would double checkpoint size. The data
iterator's position is host state (grain's JSON) and is saved next to the state in the same
checkpoint (see `checkpoint.py`).
"""
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from concise_jax import components, sharding


@flax.struct.dataclass
class TrainState:
  """Trainable params, optimizer state, the components' memory, the update counter and,
  with speculative rollouts, the draft head's training state.

  No RNG: sampling keys are pure functions of (seed, step) (`loop`), so a resumed run draws
  exactly what an uninterrupted one would without storing a key.
  """
  step: jax.Array                   # [] int32 completed updates
  params: Any                       # trainable tree: full model params, or LoRA adapters
  opt_state: optax.OptState
  reward_state: components.ComponentStates  # the selected reward / budget's own state
  # The speculative draft head and its optimiser (`draft.training.DraftTrainState`, replicated)
  # when `rollout.speculative.enabled`; None otherwise, so runs without it keep their layout.
  draft: Any = None


def init_train_state(params: Any, tx: optax.GradientTransformation, *,
                     reward_state: components.ComponentStates | None = None) -> TrainState:
  """A fresh state at step 0 for `params` (trainable tree).

  `reward_state` is `components.init_states(config, num_prompts)`; None gives stateless
  components (enough for the abstract state `state_shardings` reads, which treats the
  component states as one replicated subtree).
  """
  if reward_state is None:
    reward_state = components.ComponentStates(step=jnp.zeros((), jnp.int32), reward=(),
                                              budget=())
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    reward_state=reward_state)


def state_shardings(abstract_state: TrainState, tx: optax.GradientTransformation,
                    params_axes: Any, mesh: jax.sharding.Mesh,
                    rules: Sequence[tuple]) -> TrainState:
  """NamedSharding of every state leaf: params by the rules, optimizer moments like their
  params (found with `optax.tree_map_params`), everything else replicated.

  The component states get one replicated sharding for the whole subtree (a pytree prefix):
  their structure depends on the selected reward and budget, which the update never reads, so
  one update's shardings serve every reward.
  """
  param_sh = sharding.tree_shardings(mesh, params_axes, rules, abstract_state.params)
  rep = sharding.replicated(mesh)
  opt_sh = optax.tree_map_params(tx, lambda _, s: s, abstract_state.opt_state, param_sh,
                                 transform_non_params=lambda _: rep)
  return TrainState(step=rep, params=param_sh, opt_state=opt_sh,
                    reward_state=rep)


def with_state_leaves(state_sh: TrainState, state: TrainState) -> TrainState:
  """`state_sh` with its one component-state sharding repeated over `state`'s component
  leaves: the full tree `distributed.put` needs (jit accepts the prefix as it is)."""
  return state_sh.replace(reward_state=jax.tree.map(lambda _: state_sh.reward_state,
                                                    state.reward_state))
