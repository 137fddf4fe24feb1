"""`loading.load` dispatch: known names, .gguf paths, HF directories, and clear errors."""
import sys
import types

import pytest

import concise_jax.models
from concise_jax.models import gguf_loading, loading


def test_unknown_name_lists_known_names():
  with pytest.raises(ValueError, match="smollm2-135m-instruct"):
    loading.load("no-such-model")


def test_known_name_resolves_to_the_pip_shipped_gguf():
  try:
    expected = gguf_loading.locate_smollm2_gguf()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  assert loading.resolve("smollm2-135m-instruct") == expected


def test_hf_directory_delegates_to_hf_loading(tmp_path, monkeypatch):
  (tmp_path / "config.json").write_text("{}")
  fake = types.ModuleType("concise_jax.models.hf_loading")
  fake.load_hf_checkpoint = lambda path: ("cfg", {"params": path}, "tokenizer")
  monkeypatch.setitem(sys.modules, fake.__name__, fake)
  monkeypatch.setattr(concise_jax.models, "hf_loading", fake, raising=False)
  assert loading.load(str(tmp_path)) == ("cfg", {"params": tmp_path}, "tokenizer")


def test_directory_without_config_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="config.json"):
    loading.load(tmp_path)
