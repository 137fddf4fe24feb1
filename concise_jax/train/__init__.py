"""Training: TrainState, the jitted update, the run set-up, the host loop, checkpoints, metrics.

    result = train.run(config, workdir)          # what `python -m concise_jax.main` calls
    with train.make_trainer(config) as trainer:  # a run set up, for tests and benchmarks
      state, metrics = train.train_step(trainer, trainer.state, 0)
"""
from concise_jax.train.loop import RunResult, evaluate, run, train_step
from concise_jax.train.state import TrainState, init_train_state
from concise_jax.train.step import UpdateBatch, UpdateSpec, make_update_step
from concise_jax.train.trainer import (Trainer, build_functions, load_model, load_prompts,
                                       load_trained_policy, make_trainer, split_trainable)

__all__ = ["RunResult", "TrainState", "Trainer", "UpdateBatch", "UpdateSpec", "build_functions",
           "evaluate", "init_train_state", "load_model", "load_prompts", "load_trained_policy",
           "make_trainer", "make_update_step", "run", "split_trainable", "train_step"]
