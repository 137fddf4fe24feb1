"""The efficient-reasoning study on SmolLM2-135M-Instruct (LoRA), at the README main job's
budget: `configs/quickstart.py` (single-digit additions asked step by step, 4 prompts × 8
samples × ≤128 tokens, 12 steps, held-out 16 prompts × 8 samples before and after) with only
the reward (and for L1 / TLTS the budget) changed. The `grpo_lambda` run is the main job itself.
Two seeds per method. About 25 min per run on a quiet 2-core CPU (~5 h per seed of the 12
methods); on one H200 with 16 runs at a time, seed 0 of all 12 finished within 4.5 min.

  python -m concise_jax.sweep --sweep=experiments/sweeps/length_methods.py --root=runs/sweeps \
      [--max_runs=2]          # one sitting; rerun to continue, finished runs are skipped
      [--parallel=16]         # on a GPU: many of these small runs share it
  python experiments/study_report.py --study=length_methods    # table.md, pareto.png, curves.png
  python -m concise_jax.sweep --sweep=... --executor=slurm   # one array job per run
"""
import ml_collections


def get_config():
  s = ml_collections.ConfigDict()
  s.study = "length_methods"
  s.base = "configs/quickstart.py"
  s.common = ()
  s.runs = {
      "grpo": ("reward.name=correctness",),
      "naive_length": ("reward.name=linear_length",),
      "kimi": ("reward.name=kimi_length",),
      "grpo_lambda": ("reward.name=grpo_lambda",),
      "dler": ("reward.name=dler", "reward.dler.max_len=64"),
      "drpo": ("reward.name=drpo",),
      "ceeh": ("reward.name=ceeh",),
      "hapo": ("reward.name=hapo_cosine",),
      "dot": ("reward.name=dot", "reward.dot.alpha=2.0"),   # 3 can't cut in groups of 8
      "laser_d": ("reward.name=laser_d", "reward.laser_d.grid_lower=16",
                  "reward.laser_d.grid_upper=128", "reward.laser_d.grid_step=16",
                  "reward.laser_d.monitor_freq=4", "reward.laser_d.monitor_prompts=16"),
      "l1": ("reward.name=l1_exact", "reward.l1_exact.alpha=0.01", "budget.name=uniform",
             "budget.uniform.low=0.25", "budget.prompt_template=Think for {n} tokens."),
      "tlts": ("reward.name=correctness", "budget.name=tlts", "budget.tlts.period=3"),
  }
  s.seeds = (0, 1)
  s.slurm = {"timeout_min": 720}
  return s
