"""The tokenizer every part of concise_jax uses: a thin wrapper over a `tokenizers.Tokenizer`.

Two sources:

- `Tokenizer.from_gguf(path)` rebuilds the byte-level BPE from a GGUF file's metadata with the
  `tokenizers` library alone (transformers' GGUF reader needs torch, even for the tokenizer).
- `Tokenizer.from_hf_dir(path)` reads a Hugging Face checkpoint's `tokenizer.json` (+ optional
  `tokenizer_config.json`, `chat_template.jinja`, `generation_config.json`).

Chat templates are the checkpoint's own Jinja template rendered as transformers renders it
(sandboxed, `trim_blocks`, `lstrip_blocks`), so prompts are byte-identical to what the model was
tuned on. SmolLM2's template injects the default system prompt "You are a helpful AI assistant
named SmolLM, trained by Hugging Face" whenever the first message is not a system message.
"""
import functools
import json
import pathlib
from collections.abc import Sequence

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

# Strings that end a completion in the chat families we support. Any of them present as a
# special token joins `eos_ids`: SmolLM2 ends turns with <|im_end|> but its base-model habit of
# writing <|endoftext|> also shows up in sampled completions.
_END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>")

_GGUF_TOKEN_CONTROL = 3       # llama.cpp token_type of special tokens (<|im_start|>, ...)
_GGUF_TOKEN_USER_DEFINED = 4  # added, matched whole in text, but not special


def _byte_level(use_regex: bool = True):
  return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)


# llama.cpp's `tokenizer.ggml.pre` names -> the Hugging Face pre-tokenizer its vocabulary was
# trained with. "smollm" isolates every digit before the GPT-2 regex split, exactly as SmolLM2's
# own tokenizer.json does (Digits(individual_digits=True) then ByteLevel).
_GGUF_PRE_TOKENIZERS = {
    "smollm": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), _byte_level()]),
    "gpt-2": _byte_level,
    "gpt2": _byte_level,
    "default": _byte_level,
}


class Tokenizer:
  """Text <-> token ids, chat templating and end-of-sequence ids for one checkpoint.

  Attributes:
    vocab_size: number of ids the tokenizer can produce (including added tokens).
    eos_ids: every id that ends a completion; the first is the checkpoint's own eos.
    pad_id: id used to pad batches (never attended to, so any id works); the checkpoint's pad
      token, else the first eos id.
    bos_id: the checkpoint's bos id, or None. Never added by `encode`.
  """

  def __init__(self, backend: tokenizers.Tokenizer, *, eos_ids: Sequence[int],
               pad_id: int | None = None, bos_id: int | None = None,
               chat_template: str | None = None, special_strings: dict[str, str] | None = None):
    self._tk = backend
    self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
    self.eos_ids = tuple(dict.fromkeys(int(i) for i in eos_ids))  # dedupe, keep order
    if not self.eos_ids:
      raise ValueError("A tokenizer needs at least one end-of-sequence id.")
    self.pad_id = self.eos_ids[0] if pad_id is None else int(pad_id)
    self.bos_id = None if bos_id is None else int(bos_id)
    self.chat_template = chat_template
    # bos_token / eos_token strings, passed to templates that write them.
    self._special_strings = dict(special_strings or {})

  # ---- constructors ----

  @classmethod
  def from_gguf(cls, path_or_reader) -> "Tokenizer":
    """Builds the tokenizer a GGUF file describes (byte-level BPE, `tokenizer.ggml.model=gpt2`).

    Args:
      path_or_reader: a `.gguf` path or an open `gguf.GGUFReader` (share one: parsing the
        49k-entry vocabulary dominates the cost).
    """
    from concise_jax.models import gguf_loading  # keeps `gguf` optional for HF-only users
    reader = gguf_loading.open_gguf(path_or_reader)
    meta = lambda key, default=None: gguf_loading.metadata_value(
        reader, f"tokenizer.{key}", default)
    backend = _bpe_from_gguf_metadata(meta)
    tokens = meta("ggml.tokens")
    ids = {name: meta(f"ggml.{name}_token_id") for name in ("bos", "eos", "padding")}
    eos_ids = [i for i in (ids["eos"],) if i is not None] + _end_marker_ids(backend)
    strings = {f"{k}_token": tokens[ids[k]] for k in ("bos", "eos") if ids[k] is not None}
    return cls(backend, eos_ids=eos_ids, pad_id=ids["padding"], bos_id=ids["bos"],
               chat_template=meta("chat_template"), special_strings=strings)

  @classmethod
  def from_hf_dir(cls, path) -> "Tokenizer":
    """Loads `tokenizer.json` from a Hugging Face checkpoint directory.

    Eos ids come from `tokenizer_config.json`'s eos_token, `generation_config.json`'s
    eos_token_id (int or list), and any end marker the vocabulary has as a special token.
    """
    path = pathlib.Path(path)
    backend = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    config = _read_json(path / "tokenizer_config.json")
    strings = {k: _token_content(config.get(k)) for k in ("bos_token", "eos_token", "pad_token")}
    to_id = lambda s: None if s is None else backend.token_to_id(s)
    gen_eos = _read_json(path / "generation_config.json").get("eos_token_id")
    gen_eos = [] if gen_eos is None else [gen_eos] if isinstance(gen_eos, int) else list(gen_eos)
    eos_ids = [i for i in [to_id(strings["eos_token"]), *gen_eos] if i is not None]
    eos_ids += _end_marker_ids(backend)
    return cls(backend, eos_ids=eos_ids, pad_id=to_id(strings["pad_token"]),
               bos_id=to_id(strings["bos_token"]), chat_template=_hf_chat_template(path, config),
               special_strings={k: v for k, v in strings.items() if v is not None})

  # ---- text <-> ids ----

  def encode(self, text: str) -> list[int]:
    """Token ids of `text`; adds no bos/eos, but special-token strings in the text
    (e.g. "<|im_start|>") map to their ids, as in the chat template's output."""
    return self._tk.encode(text, add_special_tokens=False).ids

  def decode(self, ids, skip_special_tokens: bool = True) -> str:
    """Text of `ids` (any int sequence, including numpy arrays)."""
    return self._tk.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def token_strings(self) -> list[str]:
    """Decoded text of every id, special tokens included (for stop-string matching).

    A byte-level token holding part of a multi-byte character decodes to U+FFFD.
    """
    return list(self._token_strings)

  @functools.cached_property
  def _token_strings(self) -> tuple[str, ...]:
    ids = [[i] for i in range(self.vocab_size)]
    return tuple(self._tk.decode_batch(ids, skip_special_tokens=False))

  # ---- chat ----

  def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Renders `messages` ([{"role", "content"}, ...]) with the checkpoint's chat template.

    Without a template, falls back to plain ChatML (no default system prompt).
    """
    if self.chat_template is None:
      return _render_chatml(messages, add_generation_prompt)
    return _compile_template(self.chat_template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **self._special_strings)

  def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """`encode(apply_chat_template(...))`: the prompt ids the model expects."""
    return self.encode(self.apply_chat_template(messages, add_generation_prompt))


def _bpe_from_gguf_metadata(meta) -> tokenizers.Tokenizer:
  """A byte-level BPE `tokenizers.Tokenizer` from GGUF `tokenizer.ggml.*` metadata."""
  kind, pre = meta("ggml.model"), meta("ggml.pre", "default")
  if kind != "gpt2":
    raise NotImplementedError(f"GGUF tokenizer model {kind!r}: only byte-level BPE ('gpt2').")
  if pre not in _GGUF_PRE_TOKENIZERS:
    raise NotImplementedError(
        f"GGUF pre-tokenizer {pre!r} unknown; known: {sorted(_GGUF_PRE_TOKENIZERS)}.")
  tokens, types = meta("ggml.tokens"), meta("ggml.token_type")
  # Tokens are already spelled in the byte-level alphabet (space = "Ġ"), which never contains a
  # real space, so each merge "a b" splits unambiguously.
  merges = [tuple(m.split(" ")) for m in meta("ggml.merges")]
  vocab = {tok: i for i, tok in enumerate(tokens)}
  backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
  backend.pre_tokenizer = _GGUF_PRE_TOKENIZERS[pre]()
  backend.decoder = decoders.ByteLevel()
  added = lambda kind, special: [
      tokenizers.AddedToken(tok, special=special, normalized=False)
      for tok, t in zip(tokens, types) if t == kind]
  backend.add_special_tokens(added(_GGUF_TOKEN_CONTROL, True))
  backend.add_tokens(added(_GGUF_TOKEN_USER_DEFINED, False))
  return backend


def _end_marker_ids(backend: tokenizers.Tokenizer) -> list[int]:
  """Ids of the known end-of-turn/-text markers that this vocabulary has as special tokens."""
  special = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
  return [backend.token_to_id(m) for m in _END_MARKERS if m in special]


def _read_json(path: pathlib.Path) -> dict:
  return json.loads(path.read_text()) if path.is_file() else {}


def _token_content(token) -> str | None:
  """tokenizer_config.json writes special tokens as a string or an AddedToken dict."""
  return token.get("content") if isinstance(token, dict) else token


def _hf_chat_template(path: pathlib.Path, config: dict) -> str | None:
  """The default chat template of an HF checkpoint: `chat_template.jinja` (newer
  checkpoints) or tokenizer_config's `chat_template` (a string or a list of named ones)."""
  jinja_file = path / "chat_template.jinja"
  if jinja_file.is_file():
    return jinja_file.read_text()
  template = config.get("chat_template")
  if isinstance(template, list):
    named = {t["name"]: t["template"] for t in template}
    template = named.get("default", next(iter(named.values()), None))
  return template


@functools.lru_cache(maxsize=8)
def _compile_template(source: str):
  """Compiles a chat template the way transformers does, so the rendered text matches."""
  try:
    from jinja2 import exceptions, sandbox
  except ImportError as e:
    raise ImportError("Rendering a chat template needs jinja2: pip install jinja2") from e

  def raise_exception(message):
    raise exceptions.TemplateError(message)

  env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
  env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
  env.globals["raise_exception"] = raise_exception
  return env.from_string(source)


def _render_chatml(messages: list[dict], add_generation_prompt: bool) -> str:
  """Plain ChatML, for checkpoints that ship no template."""
  text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
  return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")
