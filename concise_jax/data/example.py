"""`Example`: one verifiable prompt, whichever generator or file it came from."""
import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class Example:
  """A prompt with an exactly checkable answer.

  Attributes:
    id: unique within its source and split, stable across runs (e.g. `gsm8k/test/00012`).
    prompt: the bare question; instructions and chat templates are added elsewhere, so one
      item can be rendered for different models and prompt formats.
    answer: the reference answer as text (`72`, `\\frac{1}{2}`); what verification compares to.
    difficulty: an int level where the source has one (generator level, MATH level, GSM8K
      solution steps), else a label string.
    split: "train" or "test" (or a file's own split name).
    source: the task or dataset name (`arithmetic`, `gsm8k`, ...).
    meta: extra fields, JSON-serialisable. `meta["verify_kind"]` names the answer checker
      ("numeric" when absent; "math"; "countdown").
  """
  id: str
  prompt: str
  answer: str
  difficulty: int | str
  split: str
  source: str
  meta: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

  def to_dict(self) -> dict[str, Any]:
    """A JSON-serialisable dict (meta is copied, not shared)."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "Example":
    return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def to_record(example: Example) -> dict[str, str]:
  """Flat string fields for a tfds `FeaturesDict` of `Text`; difficulty and meta as JSON."""
  return {"id": example.id, "prompt": example.prompt, "answer": example.answer,
          "difficulty": json.dumps(example.difficulty), "split": example.split,
          "source": example.source, "meta": json.dumps(example.meta, sort_keys=True)}


def from_record(record: dict[str, Any]) -> Example:
  """Inverse of `to_record`; accepts the `bytes` values `tfds.data_source` returns."""
  text = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in record.items()}
  return Example(id=text["id"], prompt=text["prompt"], answer=text["answer"],
                 difficulty=json.loads(text["difficulty"]), split=text["split"],
                 source=text["source"], meta=json.loads(text["meta"]))
