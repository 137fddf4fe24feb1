"""Prints one set of Markdown tables for several eval output dirs of the same checkpoint.

    python experiments/eval_table.py experiments/2026-11_base_eval/{builtin,mawps,gsm8k}

Use it when one evaluation was split over several commands (different instructions per
dataset); to compare different checkpoints, use experiments/pareto.py.
"""
import sys

from concise_jax.eval import report

if __name__ == "__main__":
  print(report.markdown(report.merge([report.load(p) for p in sys.argv[1:]])), end="")
