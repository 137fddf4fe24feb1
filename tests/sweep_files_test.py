"""Every run of every sweep file under experiments/sweeps resolves to a valid config, so a study
sitting does not find a typo hours in."""
import glob
import os

import pytest
from absl import flags
from ml_collections import config_flags

from concise_jax import main, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_FILES = sorted(glob.glob(os.path.join(REPO, "experiments", "sweeps", "*.py")))


def _resolved(spec):
  """The run's config as `concise_jax.main` parses, validates and prunes it."""
  argv = ["main", f"--config={spec.base}", f"--config.seed={spec.seed}",
          *(f"--config.{o}" for o in spec.overrides)]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)   # it registers the overrides it sees there
  values(argv)
  return main.resolve(values.config)


@pytest.mark.parametrize("path", SWEEP_FILES, ids=os.path.basename)
def test_every_run_of_the_sweep_file_resolves(path, monkeypatch):
  monkeypatch.chdir(REPO)                   # sweep files name their base config from the root
  specs, _ = sweep.load_sweep(path)
  assert specs
  for spec in specs:
    config = _resolved(spec)
    for override in spec.overrides:         # each override survived into the pruned config
      key, value = override.split("=", 1)
      node = config
      for part in key.split("."):
        node = node[part]
      assert str(node) == value or float(node) == float(value), (spec.run_id, override)
