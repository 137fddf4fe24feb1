"""The study's second, harder task: multi-step word problems asked step by step, where the base
model is verbose (~165 tokens, ~23% cut at 256) and right ~3% of the time at T = 0.7.

Same methods and RL budget as `length_methods.py` (the main job's 4 prompts × 8 samples, 12
steps, LoRA), with the decode cap and the length-dependent options scaled from 128 to 256
tokens. About 1 h per run on a quiet 2-core CPU (a step takes 220-260 s): ~12 h for one seed;
on one H200, 16 runs at a time took ~5 min each.

  python -m concise_jax.sweep --sweep=experiments/sweeps/length_methods_word_problems.py \
      --root=runs/sweeps [--max_runs=1]
  python experiments/study_report.py --study=length_methods_word_problems
"""
import importlib.util
import os


def _additions_study():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "length_methods.py")
  spec = importlib.util.spec_from_file_location("_length_methods", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config():
  s = _additions_study()
  s.study = "length_methods_word_problems"
  s.common = ("data.dataset=task:word_problems", "rollout.max_new_tokens=256",
              "rollout.max_prompt_tokens=96")
  s.runs.dler = ("reward.name=dler", "reward.dler.max_len=128")
  s.runs.laser_d = ("reward.name=laser_d", "reward.laser_d.grid_lower=32",
                    "reward.laser_d.grid_upper=256", "reward.laser_d.grid_step=32",
                    "reward.laser_d.monitor_freq=4", "reward.laser_d.monitor_prompts=16")
  return s
