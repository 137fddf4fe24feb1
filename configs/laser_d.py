r"""LASER-D — difficulty-aware dynamic targets (Liu et al., arXiv:2505.15612).

As LASER, but the target is per accuracy band of the group (low / medium / high), and the three
targets are re-estimated every `monitor_freq` steps from extra rollouts on a fixed monitor set
of training prompts (`train.host_features.refresh_band_targets`, run by the host loop). The
paper's grid (4096..16384 step 1024 of a 16384 cap) is scaled to our decode cap.

  python -m concise_jax.main --config=configs/laser_d.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import common, grpo, laser


def set_monitor(c, kw, arg: str | None):
  """Band-target monitor knobs, scaled to the decode cap and the run size."""
  cap = c.rollout.max_new_tokens
  kw.grid_lower = cap // 4                # 4096 of 16384
  kw.grid_upper = cap                     # 16384 of 16384
  kw.grid_step = max(cap // 16, 1)        # 1024 of 16384
  kw.monitor_freq = 20                    # refresh period in steps
  kw.monitor_samples = c.rollout.group_size  # n rollouts per monitor prompt
  kw.monitor_prompts = min(500, c.data.num_prompts)  # fixed monitor set size
  if common.parse_arg(arg, model="smollm2", runlocal=False).runlocal:
    kw.monitor_prompts = c.rollout.prompts_per_step  # one monitor rollout batch


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  laser.laser_optimisation(c)
  c.reward.name = "laser_d"
  set_monitor(c, c.reward.laser_d, arg)
  return c
