"""Standalone draft-head checkpoints: `DIR/draft_head.npz` (head + token counts) and `meta.json`.

Token counts of the target's own outputs are stored instead of a fixed vocabulary, so any
reduced draft vocabulary size (EAGLE-3, arXiv 2503.01840) can be chosen at load time.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

_FILE = "draft_head.npz"


def _flatten(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = np.asarray(jax.device_get(v))
  return out


def _unflatten(flat):
  tree = {}
  for key, v in flat.items():
    node = tree
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = jnp.asarray(v)
  return tree


def save(out_dir: str, head: dict, token_counts: np.ndarray, meta: dict) -> str:
  """Writes the head, the target-token counts [V] and `meta` (JSON); returns the npz path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, _FILE)
  tmp = path + ".tmp.npz"        # renamed into place: a run killed mid-save keeps its last head
  np.savez(tmp, **{f"head/{k}": v for k, v in _flatten(head).items()},
           token_counts=np.asarray(token_counts, np.int64))
  os.replace(tmp, path)
  with open(os.path.join(out_dir, "meta.json.tmp"), "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=1)
  os.replace(os.path.join(out_dir, "meta.json.tmp"), os.path.join(out_dir, "meta.json"))
  return path


def top_vocab(token_counts: np.ndarray, size: int) -> jax.Array:
  """The `size` most frequent target ids (ties by id), sorted by id: [size] int32."""
  order = np.argsort(-np.asarray(token_counts), kind="stable")[:size]
  return jnp.asarray(np.sort(order), jnp.int32)


def _npz_path(path: str) -> str:
  """A draft directory (or its npz), or a training workdir holding `draft/`, as the npz path."""
  if os.path.isdir(os.path.join(path, "draft")):
    path = os.path.join(path, "draft")
  return os.path.join(path, _FILE) if os.path.isdir(path) else path


def load_counts(path: str) -> np.ndarray:
  """The target-token counts [V] saved with a head (see `load` for `path`)."""
  with np.load(_npz_path(path)) as z:
    return np.asarray(z["token_counts"])


def load(path: str, vocab_size: int = 0) -> dict:
  """Draft params for `EagleDrafter`: {"head", "vocab_ids"} (vocab_ids None = full vocab).

  Args:
    path: a draft directory (or its npz), or a training workdir holding `draft/`.
    vocab_size: reduced draft vocabulary size; 0 keeps the full target vocabulary.
  """
  with np.load(_npz_path(path)) as z:
    flat = {k[len("head/"):]: z[k] for k in z.files if k.startswith("head/")}
    counts = z["token_counts"]
  vocab_ids = top_vocab(counts, vocab_size) if 0 < vocab_size < len(counts) else None
  return {"head": _unflatten(flat), "vocab_ids": vocab_ids}
