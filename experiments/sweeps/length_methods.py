"""The efficient-reasoning study on SmolLM2-135M-Instruct (LoRA): the same RL budget for each
length-aware method on the quickstart's task family, one seed to start (add seeds for the most
promising ones with `seeds`, or `--only=<name>` and a second sweep file).

  python -m concise_jax.sweep --sweep=experiments/sweeps/length_methods.py --root=runs/sweeps \
      [--max_runs=2]          # one sitting; rerun to continue, finished runs are skipped
  python -m concise_jax.sweep --sweep=... --executor=slurm   # one array job per run
"""
import ml_collections


def get_config():
  s = ml_collections.ConfigDict()
  s.study = "length_methods"
  s.base = "configs/quickstart.py"
  s.common = ("train.steps=40", "eval.every=10", "eval.num_prompts=64")
  s.runs = {
      "grpo": ("reward.name=correctness",),
      "naive_length": ("reward.name=linear_length",),
      "kimi": ("reward.name=kimi_length",),
      "grpo_lambda": ("reward.name=grpo_lambda",),
      "dler": ("reward.name=dler", "reward.dler.max_len=64"),
      "drpo": ("reward.name=drpo",),
      "ceeh": ("reward.name=ceeh",),
      "hapo": ("reward.name=hapo_cosine",),
      "dot": ("reward.name=dot",),
      "laser_d": ("reward.name=laser_d", "reward.laser_d.grid_lower=16",
                  "reward.laser_d.grid_upper=128", "reward.laser_d.grid_step=16",
                  "reward.laser_d.monitor_freq=10", "reward.laser_d.monitor_prompts=16"),
      "l1": ("reward.name=l1_exact", "reward.l1_exact.alpha=0.01", "budget.name=uniform",
             "budget.uniform.low=0.25", "budget.prompt_template=Think for {n} tokens."),
      "tlts": ("reward.name=correctness", "budget.name=tlts"),
  }
  s.seeds = (0,)
  s.slurm = {"timeout_min": 720}
  return s
