"""Bit-exact resume with host-coupled reward state: LASER-DE's monitor-refreshed band targets
(host hook every monitor_freq steps) and CEEH's per-prompt tables, on the tiny model."""
import jax
import numpy as np
import pytest

from concise_jax import train
from configs import ceeh, laser_de

STEPS = 4


def _config(name):
  module = {"laser_de": laser_de, "ceeh": ceeh}[name]
  config = module.get_config("model=tiny,runlocal")
  config.train.steps = STEPS
  config.train.ckpt_every = 2
  config.eval.every = 0
  if name == "laser_de":
    config.reward.laser_de.monitor_freq = 2     # refresh before steps 0 and 2 (the resume point)
  return config


# CEEH's tables are plain device state (the path every stateful reward takes); the host hook of
# LASER-DE is the new risk, so only it runs in CI (integration: three training runs).
@pytest.mark.parametrize("name", [
    pytest.param("laser_de", marks=pytest.mark.integration),
    pytest.param("ceeh", marks=pytest.mark.slow)])
def test_resume_is_bit_exact(name, tmp_path):
  config = _config(name)
  straight = train.run(config, str(tmp_path / "straight"))
  train.run(config, str(tmp_path / "split"), stop_at_step=2)
  resumed = train.run(config, str(tmp_path / "split"))
  assert straight.step == resumed.step == STEPS
  a, b = jax.device_get((straight.state, resumed.state))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  rs = a.reward_state      # the components' states; `.reward` is the reward's own
  assert int(rs.step) == STEPS
  if name == "laser_de":   # the monitor ran: targets set (grid values or the decode cap)
    assert (np.asarray(rs.reward) > 0).all()
  else:                    # the per-prompt tables were written for the prompts seen
    assert np.asarray(rs.reward["count_n"]).sum() > 0
