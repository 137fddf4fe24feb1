"""Our JAX forward on the real SmolLM2-135M-Instruct GGUF vs transformers' PyTorch logits.

The fixture (tests/fixtures/smollm2_reference.npz, made by experiments/make_reference_logits.py)
holds 4 chat prompts' ids, logits of every position for ids [0, 2048) and the full-vocabulary
logits of the last position. This catches what shape tests cannot: a wrong rope theta, Q/K rows
left permuted, an untied head, an off-by-one RMS epsilon -- all still give fluent text.
"""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax.models import gguf_loading, loading, transformer

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "smollm2_reference.npz"
# Whole-model tolerance (style §8.1): |ours - ref| <= RTOL * max|ref| over each compared slice.
RTOL = 1e-4


@pytest.fixture(scope="module")
def reference():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def model():
  try:
    gguf_loading.locate_smollm2_gguf()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  cfg, params, _ = loading.load("smollm2-135m-instruct")
  return cfg, params


def _left_padded(ref, pad_id: int):
  """[B, S] tokens and mask holding every fixture prompt, left-padded as the sampler does."""
  seqs = [ref[f"tokens_{i}"] for i in range(4)]
  s = max(len(x) for x in seqs)
  tokens_bs = np.full((len(seqs), s), pad_id, np.int32)
  mask_bs = np.zeros((len(seqs), s), np.int32)
  for b, x in enumerate(seqs):
    tokens_bs[b, s - len(x):], mask_bs[b, s - len(x):] = x, 1
  return tokens_bs, mask_bs


@pytest.fixture(scope="module")
def our_logits(model, reference):
  cfg, params = model
  tokens_bs, mask_bs = _left_padded(reference, pad_id=2)
  fwd = jax.jit(lambda p, t, m: transformer.forward(cfg, p, t, mask_bs=m)[0])
  logits_bsv = np.asarray(fwd(params, jnp.asarray(tokens_bs), jnp.asarray(mask_bs)))
  # Strip the left padding back off: row i -> [S_i, V].
  return [logits_bsv[b, mask_bs[b] > 0] for b in range(len(mask_bs))]


def _relative_error(ours, ref) -> tuple[float, float]:
  abs_err = float(np.abs(ours - ref).max())
  return abs_err, abs_err / float(np.abs(ref).max())


@pytest.mark.parametrize("i", [  # case 0 builds the model fixtures: ~13 s on 2 cores
    pytest.param(0, marks=pytest.mark.integration), 1, 2, 3])
def test_all_positions_match_transformers(our_logits, reference, i):
  head = int(reference["head_vocab"])
  abs_err, rel_err = _relative_error(our_logits[i][:, :head], reference[f"logits_head_{i}"])
  print(f"prompt {i} positions x ids[:{head}]: max |d| {abs_err:.2e}, relative {rel_err:.2e}")
  assert rel_err < RTOL


@pytest.mark.parametrize("i", range(4))
def test_last_position_full_vocab_matches_transformers(our_logits, reference, i):
  ours_v, ref_v = our_logits[i][-1], reference[f"logits_last_{i}"]
  abs_err, rel_err = _relative_error(ours_v, ref_v)
  print(f"prompt {i} last position, full vocab: max |d| {abs_err:.2e}, relative {rel_err:.2e}")
  assert rel_err < RTOL
  assert ours_v.argmax() == ref_v.argmax()
