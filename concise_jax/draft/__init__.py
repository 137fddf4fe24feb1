"""Speculative-decoding drafts: the EAGLE head, drafter adapters, and their (online) distillation."""
from concise_jax.draft.drafters import DraftState, EagleDrafter, ModelDrafter
from concise_jax.draft.head import head_forward, init_head
