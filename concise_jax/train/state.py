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

from concise_jax import sharding, types


@flax.struct.dataclass
class TrainState:
  """Trainable params, optimizer state, reward memory, RNG and the update counter."""
  step: jax.Array                   # [] int32 completed updates
  params: Any                       # trainable tree: full model params, or LoRA adapters
  opt_state: optax.OptState
  reward_state: types.RewardState   # cross-step reward memory (dataset-sized tables)
  rng: jax.Array                    # [2] uint32 raw key; per-step keys are fold_in(rng, step)


def init_train_state(params: Any, tx: optax.GradientTransformation, *, num_prompts: int,
                     rng: jax.Array) -> TrainState:
  """A fresh state at step 0 for `params` (trainable tree) and a dataset of `num_prompts`."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    reward_state=types.init_reward_state(num_prompts), rng=rng)


def state_shardings(abstract_state: TrainState, tx: optax.GradientTransformation,
                    params_axes: Any, mesh: jax.sharding.Mesh,
                    rules: Sequence[tuple]) -> TrainState:
  """NamedSharding of every state leaf: params by the rules, optimizer moments like their
  params (found with `optax.tree_map_params`), everything else replicated."""
  param_sh = sharding.tree_shardings(mesh, params_axes, rules, abstract_state.params)
  rep = sharding.replicated(mesh)
  opt_sh = optax.tree_map_params(tx, lambda _, s: s, abstract_state.opt_state, param_sh,
                                 transform_non_params=lambda _: rep)
  return TrainState(step=rep, params=param_sh, opt_state=opt_sh,
                    reward_state=jax.tree.map(lambda _: rep, abstract_state.reward_state),
                    rng=rep)
