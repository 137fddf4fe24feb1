"""The test model: a tiny random decoder plus a character-level tokenizer (no downloads).

Smoke runs, configs (`model=tiny`) and tests all share it.
"""
import jax

from concise_jax.models import transformer
from concise_jax.models.config import TINY, ModelConfig

# Ids 0-3 are specials; the rest cover digits, operators, lower-case letters and punctuation.
_SPECIALS = ("<pad>", "<eos>", "<user>", "<assistant>")
_CHARS = "0123456789+-*/=()., ?:\nabcdefghijklmnopqrstuvwxyzAW#"


class CharTokenizer:
  """Character-level tokenizer with the same interface as `models.tokenizer.Tokenizer`."""

  def __init__(self):
    self._id = {c: i + len(_SPECIALS) for i, c in enumerate(_CHARS)}
    self._str = list(_SPECIALS) + list(_CHARS)
    self.vocab_size = len(self._str)
    self.pad_id, self.bos_id = 0, None
    self.eos_ids = (1,)

  def encode(self, text: str) -> list[int]:
    """Unknown characters map to '?' so arbitrary model-facing text never fails."""
    return [self._id.get(c, self._id["?"]) for c in text.lower()]

  def decode(self, ids, skip_special_tokens: bool = True) -> str:
    ids = [int(i) for i in ids]
    return "".join(self._str[i] for i in ids
                   if 0 <= i < self.vocab_size and not (skip_special_tokens and i < len(_SPECIALS)))

  def apply_chat_template(self, messages, add_generation_prompt: bool = True) -> str:
    del messages, add_generation_prompt
    raise NotImplementedError("CharTokenizer templates straight to ids; use encode_chat")

  def encode_chat(self, messages, add_generation_prompt: bool = True) -> list[int]:
    """<user> text <eos> ... <assistant>: the chat structure without a text template."""
    ids = []
    for m in messages:
      ids += [2 if m["role"] != "assistant" else 3] + self.encode(m["content"]) + [1]
    return ids + ([3] if add_generation_prompt else [])

  def token_strings(self) -> list[str]:
    return list(self._str)


def tiny_config(**overrides) -> ModelConfig:
  """TINY with the vocab sized to the char tokenizer; overrides go through `replace`."""
  return TINY.replace(vocab_size=CharTokenizer().vocab_size, **overrides)


def load_tiny(seed: int = 0):
  """(config, random params, tokenizer) — the same triple `models.load` returns."""
  cfg = tiny_config()
  return cfg, transformer.init_params(cfg, jax.random.key(seed)), CharTokenizer()
