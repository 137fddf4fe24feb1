"""`python -m concise_jax.eval --speculative=eagle|eagle_tree` gives the plain greedy completions."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from concise_jax.draft import checkpoint, init_head
from concise_jax.models import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(out, *extra):
  proc = subprocess.run(
      [sys.executable, "-m", "concise_jax.eval", "--checkpoint=tiny", "--data=task:add_1digit",
       "--n=3", "--max_new_tokens=8", "--batch_size=2", "--instruction=brief", "--noprogress",
       f"--out_dir={out}", *extra], cwd=REPO, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(out, "completions.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.integration   # two CLI processes, each compiling its sampler
@pytest.mark.parametrize("spec_flags", [
    ("--speculative=eagle", "--num_draft=3"),
    ("--speculative=eagle_tree", "--tree_top_k=2", "--tree_depth=2", "--tree_nodes=5")])
def test_eval_cli_speculative_matches_plain_greedy(tmp_path, spec_flags):
  cfg, params, _ = tiny.load_tiny(0)
  checkpoint.save(str(tmp_path / "draft"), init_head(cfg, params, jax.random.key(0)),
                  np.arange(cfg.vocab_size), {})
  plain = _cli(str(tmp_path / "plain"))
  spec = _cli(str(tmp_path / "spec"), *spec_flags, f"--draft={tmp_path / 'draft'}",
              "--draft_vocab=0")
  assert json.dumps(plain, sort_keys=True) == json.dumps(spec, sort_keys=True)
