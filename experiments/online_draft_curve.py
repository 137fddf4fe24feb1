r"""Accepted-length curve of the EAGLE head distilled online inside the RL loop (tiny target).

    python experiments/online_draft_curve.py --steps=20 --temperature=0 --policy_lr=1e-7

Runs `train.run` (GRPO-style config, REINFORCE++ advantages so greedy rollouts are allowed)
with `rollout.speculative.enabled` on the peaked tiny target (`draft.testing.sharp_tiny`; the
plain tiny model only copies its last token) and prints, per step, the mean accepted length of
that step's speculative rollouts (tokens per target forward per row, k = 4: at most 5), the
draft loss and its argmax agreement on the completions. `--policy_lr` near 0 keeps the target
still, so the curve measures the head; at the default rate the tiny policy soon collapses into
repetition, which any head drafts.
"""
import json
import os
import tempfile

import jax
from absl import app, flags

from concise_jax import train
from concise_jax.draft import testing as draft_testing
from concise_jax.train import trainer
from configs import grpo

_STEPS = flags.DEFINE_integer("steps", 20, "RL updates.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "Rollout temperature (0 = greedy).")
_POLICY_LR = flags.DEFINE_float("policy_lr", 1e-7, "Policy learning rate.")
_DRAFT_LR = flags.DEFINE_float("draft_lr", 1e-2, "rollout.speculative.lr.")
_GROUP = flags.DEFINE_integer("group_size", 1, "Samples per prompt (1 with greedy).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: a temporary one).")


def main(argv):
  del argv
  plain = trainer.load_model

  def sharp(config):
    cfg, _, tokenizer = plain(config)
    params = draft_testing.sharp_tiny(config.seed)
    return cfg, jax.tree.map(lambda x: x.astype(cfg.param_dtype), params), tokenizer

  trainer.load_model = sharp
  c = grpo.get_config("model=tiny,runlocal")
  c.advantage.name = "reinforce_pp"
  c.rollout.temperature = _TEMPERATURE.value
  c.rollout.prompts_per_step, c.rollout.group_size = 8, _GROUP.value
  c.optim.lr = _POLICY_LR.value
  c.train.steps, c.train.ckpt_every, c.eval.every = _STEPS.value, _STEPS.value, 0
  c.rollout.speculative.enabled = True
  c.rollout.speculative.lr = _DRAFT_LR.value
  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="online_draft_")
  train.run(c, workdir)
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  print("| step | accept_len | draft/loss | draft/top1 | rollout tok/s |")
  print("|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['step']} | {r['draft/accept_len']:.2f} | {r['draft/loss']:.3f} | "
          f"{r['draft/top1']:.3f} | {r['perf/rollout_tok_s']:.0f} |")


if __name__ == "__main__":
  app.run(main)
