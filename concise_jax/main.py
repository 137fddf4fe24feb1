r"""Entry point: flags → validated config, pruned to its components → `train.run(config, workdir)`.

  python -m concise_jax.main --config=configs/grpo_lambda.py --config.optim.lr=2e-6 \
      --workdir=runs/x
  python -m concise_jax.main --config=configs/grpo_lambda.py:model=tiny,runlocal --workdir=/tmp/x

An unknown override key, registry name, component option, model, task or LoRA target, or an
ill-typed option, fails before the workdir is created, naming the problem and the valid
choices; training imports (jax compiles, model loaders, data pipeline) come after that.
Re-running with the same workdir resumes.
"""
import importlib.util
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from concise_jax import config_check, distributed, options

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]); override with --config.a.b=v.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, config.")
_JOIN_PROCESSES = distributed.define_process_flags()


def _config_file(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _explain_bad_override(argv: list[str]) -> str | None:
  """Loads the config file alone and names the first override key it does not have, or the
  first component option whose value is not of the option's type."""
  path = _config_file(argv)
  if path is None:
    return None
  file, _, arg = path.partition(":")
  try:
    spec = importlib.util.spec_from_file_location("_config_for_error", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except Exception:  # pylint: disable=broad-except  # the flag parser's own error is clearer
    return None
  for key, text in config_check.overrides(argv):
    problem = config_check.unknown_override(config, key) or (
        None if text is None else options.override_error(config, key, text))
    if problem:
      return problem
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl parsing, with unknown config keys reported as one line listing the valid keys."""
  try:
    return flags.FLAGS(argv)
  except (KeyError, AttributeError, flags.Error) as e:
    message = _explain_bad_override(argv) or str(e)
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def launch(config, workdir: str):
  """Validates `config`, keeps only the selected components' options (`options.resolve`),
  then trains in `workdir` (the trainer takes the workdir lock and writes that pruned config
  as `config.json` once the data and any checkpoint have loaded).

  Raises:
    ValueError: the config names something that does not exist, is ill-typed or out of range
      (nothing is written).
  """
  config = resolve(config)
  if config.get("trainer", "") == "tppo":   # T-PPO's windowed trainer (configs/tppo.py)
    from concise_jax.train import tppo_loop  # pylint: disable=import-outside-toplevel
    return tppo_loop.run_tppo(config, workdir)
  from concise_jax import train  # pylint: disable=import-outside-toplevel  # after validation
  return train.run(config, workdir)


def resolve(config):
  """The validated, pruned run config; ValueError listing every problem otherwise."""
  errors = config_check.validate(config)
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))
  return options.resolve(config)


# One line and a distinct exit code for each way a run cannot start or stops early.
EXIT_HALTED, EXIT_INVALID, EXIT_BUSY = 1, 2, 3


def _launch_or_exit(config, workdir: str):
  """`launch`, with start-up refusals as one line on stderr and their exit code."""
  try:
    config = resolve(config)
  except ValueError as e:      # before importing the trainer: a bad flag is reported at once
    sys.stderr.write(f"error: {e}\n")
    sys.exit(EXIT_INVALID)
  for notice in config_check.notices(config):
    sys.stderr.write(f"notice: {notice}\n")
  from concise_jax.train import checkpoint, workdir_lock  # pylint: disable=import-outside-toplevel
  try:
    return launch(config, workdir)
  except workdir_lock.WorkdirBusy as e:
    sys.stderr.write(f"error: {e}\n")
    sys.exit(EXIT_BUSY)
  except (ValueError, checkpoint.CheckpointError) as e:   # data.DataError is a ValueError
    sys.stderr.write(f"error: {e}\n")
    sys.exit(EXIT_INVALID)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None or not _WORKDIR.value:
    raise app.UsageError("--config and --workdir are required")
  if not flags.FLAGS["verbosity"].present:
    # orbax logs every checkpoint file operation at INFO; the console line carries progress.
    logging.set_verbosity(logging.WARNING)
  _JOIN_PROCESSES()
  result = _launch_or_exit(_CONFIG.value, _WORKDIR.value)
  if result.preempted:
    from concise_jax.train import preemption  # pylint: disable=import-outside-toplevel
    saved = (f"checkpoint of step {result.step} saved, metrics flushed" if result.step
             else "before the first step, nothing to save")
    sys.stderr.write(f"preempted by {result.preempted}: {saved}; rerun the same command to "
                     "resume\n")
    sys.exit(preemption.EXIT_PREEMPTED)
  if result.eval_before or result.eval_after:
    from concise_jax.train import metrics  # pylint: disable=import-outside-toplevel
    n = _CONFIG.value.eval.num_prompts
    print(f"\nheld-out evaluation ({n} prompts, temperature {_CONFIG.value.eval.temperature}), "
          f"step 0 vs step {result.step}:")
    print(metrics.before_after_table(result.eval_before, result.eval_after))
  if result.halted:
    sys.exit(EXIT_HALTED)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
