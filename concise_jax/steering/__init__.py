"""Activation-Steered Compression (ASC, arXiv 2507.04742): steering vectors that shorten reasoning.

    pairs = steering.pairs.from_own_samples(...)            # or steering.pairs.from_jsonl(path)
    vecs = steering.extract(cfg, params, tok, pairs, layers=(23,))
    cal = steering.calibrate(steering.Calibrator(cfg, params, contexts, vecs[23]), target_kl=0.1)
    steering.save(dataclasses.replace(vecs[23], extra=cal.as_metadata()), "steer.safetensors")
    out = rollout.sample(..., steering=steering.load("steer.safetensors").steering(cal.strength))
"""
from concise_jax.steering import pairs
from concise_jax.steering.strength import (Calibration, Calibrator, calibrate, hoeffding_bound,
                                            contexts_from_pairs, kl_direct, kl_identity,
                                           solve_strength)
from concise_jax.steering.extract import extract
from concise_jax.steering.pairs import Pair
from concise_jax.steering.vectors import SteeringVector, load, save, stack_rows
