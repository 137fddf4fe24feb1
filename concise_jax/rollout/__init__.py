"""Rollout: the jitted KV-cache sampler and its host-side helpers."""
from concise_jax.rollout.generate import (chat_ids, completions_to_text, generate, left_pad,
                                          stop_sequences)
from concise_jax.rollout.sampler import SampleOutput, SamplingParams, process_logits, sample
