"""Training: TrainState, the jitted update, the host loop, checkpoints and metrics.

    result = train.run(config, workdir)          # what `python -m concise_jax.main` calls
"""
from concise_jax.train.loop import RunResult, run
from concise_jax.train.state import TrainState, init_train_state
from concise_jax.train.step import UpdateBatch, make_update_step

__all__ = ["RunResult", "TrainState", "UpdateBatch", "init_train_state", "make_update_step",
           "run"]
