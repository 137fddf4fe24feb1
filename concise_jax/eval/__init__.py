"""Evaluation: accuracy and token cost of a policy on verifiable datasets.

`metrics` holds the pure metric functions, `runner` generates and verifies completions,
`report` writes JSON and Markdown; `python -m concise_jax.eval` is the command line.
"""
from concise_jax.eval import metrics
from concise_jax.eval import report
from concise_jax.eval.runner import (EvalSettings, Policy, evaluate_dataset, load_examples,
                                     load_policy)
