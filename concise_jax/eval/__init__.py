"""Evaluation: accuracy and token cost of a policy on verifiable datasets.

`metrics` holds the pure metric functions, `runner` generates and verifies completions (the one
path training-time evaluation shares), `report` writes JSON and Markdown;
`python -m concise_jax.eval` is the command line.

Only the pure modules load with the package: `from concise_jax.eval import metrics` (as the
reflection reward does) pulls in no model, sampler or verifier pool; the runner loads on first
use of `runner` or one of its names.
"""
import importlib

from concise_jax.eval import metrics
from concise_jax.eval import report

_RUNNER_NAMES = ("EvalSettings", "Policy", "evaluate_dataset", "load_examples", "load_policy")


def __getattr__(name: str):
  if name == "runner":
    return importlib.import_module("concise_jax.eval.runner")
  if name in _RUNNER_NAMES:
    return getattr(importlib.import_module("concise_jax.eval.runner"), name)
  raise AttributeError(f"module 'concise_jax.eval' has no attribute {name!r}")
