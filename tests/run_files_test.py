"""`metrics.jsonl` after kills: a torn last row is never read as data, and resume trims it; the
config and platform files."""
import json

import jax
import ml_collections

from concise_jax.train import run_files


def _write(path, text):
  path.write_text(text, encoding="utf-8")


def test_read_metrics_ignores_a_row_still_being_written(tmp_path):
  rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
  full = "".join(json.dumps(r) + "\n" for r in rows)
  head = json.dumps({"step": 3, "loss": 0.125})[:9]      # '{"step": ' — a write cut short
  _write(tmp_path / run_files.METRICS, full + head)
  assert run_files.read_metrics(str(tmp_path)) == rows
  # The writer finishes the row: the next read sees it whole, never its tail as a row.
  _write(tmp_path / run_files.METRICS, full + json.dumps({"step": 3, "loss": 0.125}) + "\n")
  assert [r["step"] for r in run_files.read_metrics(str(tmp_path))] == [1, 2, 3]


def test_read_metrics_of_a_missing_or_empty_file(tmp_path):
  assert run_files.read_metrics(str(tmp_path)) == []
  _write(tmp_path / run_files.METRICS, "")
  assert run_files.read_metrics(str(tmp_path)) == []


def test_trim_keeps_rows_up_to_the_restored_step_and_drops_a_torn_line(tmp_path):
  rows = [{"step": s, "x": s / 4} for s in range(0, 5)]
  _write(tmp_path / run_files.METRICS,
         "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "x"')
  assert run_files.trim_metrics(str(tmp_path), 2) == 3    # steps 3, 4 and the torn row
  assert run_files.read_metrics(str(tmp_path)) == rows[:3]
  assert run_files.trim_metrics(str(tmp_path), 0) == 3     # a fresh start logs all again
  assert run_files.read_metrics(str(tmp_path)) == []


def test_write_config_records_the_config_and_the_platform_it_trains_on(tmp_path):
  config = ml_collections.ConfigDict({"seed": 3, "model": {"name": "tiny"}})
  run_files.write_config(str(tmp_path), config)
  assert json.loads((tmp_path / "config.json").read_text()) == {"model": {"name": "tiny"},
                                                                "seed": 3}
  platform = json.loads((tmp_path / "platform.json").read_text())
  assert platform == {"backend": jax.default_backend(), "devices": jax.device_count(),
                      "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
                      "processes": 1}
  assert not list(tmp_path.glob("*.tmp"))
