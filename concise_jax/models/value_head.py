"""A critic for PPO-style training (T-PPO, arXiv:2506.15050): a linear value head on the
decoder's final-normed hidden states.

Two critic forms share this head:
- **on the policy trunk**: `values_bs(cfg, policy_params, head, ..., trunk_grad=False)` reads
  the policy's own forward with a stop-gradient, so the value loss trains only the head (no
  second forward or backward through the trunk);
- **a separate critic**: a full copy of the decoder initialised from the policy, trained with
  its own optimizer (`trunk_grad=True` on the critic's params) — twice the update cost.

Values come per position: V(s_t) of a completion token t is read at the position of the token
before it (the state that predicts t), so a prompt of S positions followed by T completion
tokens gives the T + 1 values GAE needs (`completion_values_bt1`).
"""
import jax
import jax.numpy as jnp

from concise_jax.models.config import ModelConfig
from concise_jax.models.transformer import forward


def init_value_head(cfg: ModelConfig) -> dict:
  """Zero weights: every value starts at 0 (the mean outcome of a balanced 0/1 reward is
  unknown, and 0 keeps the first advantages equal to the returns)."""
  return {"w": jnp.zeros((cfg.d_model,), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def value_head_axes() -> dict:
  """Logical axes of the head (its weight follows the model dimension)."""
  return {"w": ("embed",), "b": ()}


def values_bs(cfg: ModelConfig, params: dict, head: dict, tokens_bs: jax.Array,
              mask_bs: jax.Array, *, trunk_grad: bool = False) -> jax.Array:
  """[B, S] float32 V at every position; `trunk_grad=False` stops the gradient at the trunk."""
  hidden_bsd, _ = forward(cfg, params, tokens_bs, mask_bs=mask_bs, return_logits=False)
  if not trunk_grad:
    hidden_bsd = jax.lax.stop_gradient(hidden_bsd)
  return hidden_bsd.astype(jnp.float32) @ head["w"] + head["b"]


def completion_values_bt1(values_bs_: jax.Array, prompt_len: int) -> jax.Array:
  """[B, T + 1] V(s_0 … s_T) of the completion that follows a (left-padded) prompt of
  `prompt_len` positions: V(s_t) sits at position prompt_len − 1 + t."""
  return values_bs_[:, prompt_len - 1:]
