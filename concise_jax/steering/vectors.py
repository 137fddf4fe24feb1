"""Steering vectors on disk: one safetensors file holding the vector and its provenance.

    vec = SteeringVector(vector_d, layer=23, rule="last", model="smollm2-135m-instruct", ...)
    save(vec, "ckpt/steering_l23.safetensors")
    steer = load("ckpt/steering_l23.safetensors").steering(strength=0.5)

The file stores the raw (not normalised) mean difference, so a strength γ multiplies it
directly, as in ASC (arXiv 2507.04742). Metadata is safetensors' string header.
"""
import dataclasses
import json

import numpy as np
import safetensors.numpy

from concise_jax.models import transformer


@dataclasses.dataclass(frozen=True)
class SteeringVector:
  """A concise-minus-verbose direction for one layer.

  Attributes:
    vector_d: [D] float32, mean over pairs of h(concise) − h(verbose) (not normalised).
    layer: decoder layer index; extraction reads the residual stream after this layer and
      injection adds to it at the same index.
    rule: default injection position rule (`transformer.POSITION_RULES`): "last" (ASC) or "all".
    model: the model the vector was extracted from.
    pairs_source: where the pairs came from ("own_samples:<dataset>" or "jsonl:<path>").
    num_pairs: how many pairs were averaged.
    extract_position: which position of each pair was read ("last" token, or "mean" over the
      answer tokens).
    extra: any other string-valued provenance (e.g. the calibration result).
  """
  vector_d: np.ndarray
  layer: int
  rule: str = "last"
  model: str = ""
  pairs_source: str = ""
  num_pairs: int = 0
  extract_position: str = "last"
  extra: dict[str, str] = dataclasses.field(default_factory=dict)

  def steering(self, strength, rule: str | None = None) -> transformer.Steering:
    """The model-side `Steering`; `strength` may be a scalar or per row [B]."""
    return transformer.Steering.create(self.vector_d, self.layer, strength, rule or self.rule)

  def metadata(self) -> dict[str, str]:
    return {"layer": str(self.layer), "rule": self.rule, "model": self.model,
            "pairs_source": self.pairs_source, "num_pairs": str(self.num_pairs),
            "extract_position": self.extract_position,
            "norm": f"{np.linalg.norm(self.vector_d):.6g}",
            "extra": json.dumps(self.extra, sort_keys=True)}


def save(vec: SteeringVector, path: str) -> None:
  """Writes the vector and its metadata as one safetensors file."""
  safetensors.numpy.save_file({"vector": np.asarray(vec.vector_d, np.float32)}, path,
                              metadata=vec.metadata())


def load(path: str) -> SteeringVector:
  """Reads a file written by `save`."""
  with safetensors.safe_open(path, framework="numpy") as f:
    meta = f.metadata() or {}
    vector = f.get_tensor("vector")
  if "layer" not in meta:
    raise ValueError(f"{path} has no steering metadata (layer missing)")
  return SteeringVector(vector_d=vector, layer=int(meta["layer"]), rule=meta.get("rule", "last"),
                        model=meta.get("model", ""), pairs_source=meta.get("pairs_source", ""),
                        num_pairs=int(meta.get("num_pairs", 0)),
                        extract_position=meta.get("extract_position", "last"),
                        extra=json.loads(meta.get("extra", "{}")))


def stack_rows(vectors: list[SteeringVector], strengths, rule: str = "last"
               ) -> transformer.Steering:
  """Per-row steering for a sweep: row i uses `vectors[i]` at `strengths[i]` (one batch, one
  compile). Rows that should be unsteered take strength 0."""
  if len(vectors) != len(strengths):
    raise ValueError(f"{len(vectors)} vectors but {len(strengths)} strengths")
  return transformer.Steering.create(
      np.stack([v.vector_d for v in vectors]), np.asarray([v.layer for v in vectors]),
      np.asarray(strengths, np.float32), rule)

