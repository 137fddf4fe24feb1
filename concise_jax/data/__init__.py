"""Prompt data: built-in verifiable tasks, local dataset files, dataset specs, the grain pipeline.

Importing the package registers every built-in task in `TASKS`.
"""
# Task modules register themselves on import.
from concise_jax.data import arithmetic
from concise_jax.data import countdown
from concise_jax.data import linear_equations
from concise_jax.data import word_problems
from concise_jax.data.example import Example
from concise_jax.data.generators import generate
from concise_jax.data.generators import TASKS
from concise_jax.data.instructions import add_instruction
from concise_jax.data.jsonl import DataError
from concise_jax.data.jsonl import read_jsonl
from concise_jax.data.pipeline import make_prompt_iterator
from concise_jax.data.sources import load_dataset
from concise_jax.data.specs import DataSpec
from concise_jax.data.specs import dataset_kinds
from concise_jax.data.specs import parse_data_spec
