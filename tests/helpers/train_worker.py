"""One process of a multi-process test run: joins the run, trains, exits.

    python -m tests.helpers.train_worker ADDRESS NUM_PROCESSES PROCESS_ID WORKDIR MESH STOP_AT

Trains the tiny `grpo_lambda` config (full fine-tuning, KL on) for 3 steps on MESH
("2,2,2"), stopping after STOP_AT updates as a preempted job would.
"""
import sys

from concise_jax import distributed


def config_for(mesh: tuple):
  from configs import grpo_lambda  # pylint: disable=import-outside-toplevel
  config = grpo_lambda.get_config("model=tiny,runlocal")
  config.kl.coef = 0.05
  config.train.steps = 3
  config.train.ckpt_every = 1
  config.eval.every = 0
  config.mesh.shape = mesh
  return config


def main(argv):
  address, num, pid, workdir, mesh, stop_at = argv[1:]
  distributed.initialize(address, int(num), int(pid))
  from concise_jax import train  # pylint: disable=import-outside-toplevel
  config = config_for(tuple(int(x) for x in mesh.split(",")))
  result = train.run(config, workdir, stop_at_step=int(stop_at))
  print(f"process {pid}: step {result.step}")


if __name__ == "__main__":
  main(sys.argv)
