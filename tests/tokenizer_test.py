"""Tokenizer: a synthetic HF directory, and SmolLM2's GGUF tokenizer against known ids.

The SmolLM2 ids below were produced once by transformers 5.23
(`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, torch CPU) and hard-coded, so this test
needs no torch. Exception, `_DIGIT_SPLIT_CASES`: transformers' GGUF tokenizer ignores the file's
`tokenizer.ggml.pre = "smollm"` and pre-tokenizes with plain GPT-2 regex, so a whitespace run
before a digit comes out as [Ġ, Ġ, digit]. SmolLM2's own tokenizer.json (and llama.cpp's
"smollm" pre-tokenizer) isolates each digit *first*, leaving the run "  " to merge into ĠĠ (256).
We follow the model's own tokenizer; those expected ids are the stock transformers ids with that
one difference, noted per case.
"""
import json

import pytest
import tokenizers
from tokenizers import models, pre_tokenizers

from concise_jax.models import gguf_loading
from concise_jax.models.tokenizer import Tokenizer

_KNOWN_IDS = {
    "Hello world": [19556, 905],
    "What is 12 + 7?": [1780, 314, 216, 33, 34, 1232, 216, 39, 47],
    "1234567": [33, 34, 35, 36, 37, 38, 39],
    "a  b   c\n\n\nd": [81, 216, 278, 256, 265, 1116, 198, 84],
    "x = 3.14159;  y=-42\t\tz": [104, 446, 216, 35, 30, 33, 36, 33, 37, 41, 43, 216, 329, 15196,
                                 36, 34, 197, 197, 106],
    "I'm sure you're 99% right.": [57, 5248, 2090, 346, 2316, 216, 41, 41, 21, 1048, 30],
    "<|im_start|>user\nhi<|im_end|>\n": [1, 4093, 198, 6004, 2, 198],
    "café 😀": [83, 1939, 2756, 40303, 218],
}
_DIGIT_SPLIT_CASES = {
    "and  2/5": [397, 256, 34, 31, 37],   # stock transformers GGUF: [397, 216, 216, 34, 31, 37]
    "  7 apples": [256, 39, 13855],       # stock transformers GGUF: [216, 216, 39, 13855]
}
# transformers' apply_chat_template(tokenize=True) for one user turn "What is 2+2?".
_CHAT_IDS = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018,
             411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198,
             1, 520, 9531, 198]
_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def smollm2():
  try:
    path = gguf_loading.locate_smollm2_gguf()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  return Tokenizer.from_gguf(path)


@pytest.mark.parametrize("text,ids", list(_KNOWN_IDS.items()) + list(_DIGIT_SPLIT_CASES.items()))
def test_smollm2_known_ids(smollm2, text, ids):
  assert smollm2.encode(text) == ids
  assert smollm2.decode(ids, skip_special_tokens=False) == text


def test_smollm2_special_ids(smollm2):
  assert smollm2.vocab_size == 49152
  assert smollm2.eos_ids == (2, 0)   # <|im_end|> (the file's eos), then <|endoftext|>
  assert (smollm2.pad_id, smollm2.bos_id) == (2, 1)
  strings = smollm2.token_strings()
  assert len(strings) == 49152
  assert strings[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
  assert (strings[216], strings[256], strings[33]) == (" ", "  ", "1")


def test_smollm2_decode_skips_specials(smollm2):
  assert smollm2.decode([1, 4093, 198, 6004, 2, 198]) == "user\nhi\n"
  assert smollm2.decode(smollm2.encode("<|endoftext|>42")) == "42"


def test_smollm2_chat_template_default_system_prompt(smollm2):
  messages = [{"role": "user", "content": "What is 2+2?"}]
  assert smollm2.apply_chat_template(messages) == (
      f"<|im_start|>system\n{_DEFAULT_SYSTEM}<|im_end|>\n"
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
  assert smollm2.encode_chat(messages) == _CHAT_IDS


def test_smollm2_chat_template_own_system_prompt(smollm2):
  messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
              {"role": "assistant", "content": "yo"}]
  assert smollm2.apply_chat_template(messages, add_generation_prompt=False) == (
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
      "<|im_start|>assistant\nyo<|im_end|>\n")


# ---- from_hf_dir, on a synthetic checkpoint directory (no downloads) ----


def _write_hf_dir(path, *, with_config: bool):
  vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<eos>": 3,
           **{c: i + 4 for i, c in enumerate("abcdeĠ")}, "ab": 10}
  backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")]))
  backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  backend.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<eos>"])
  backend.save(str(path / "tokenizer.json"))
  if with_config:
    (path / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": {"content": "<eos>"}, "pad_token": "<|endoftext|>",
        "chat_template": "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}"}))
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [3, 2]}))


def test_from_hf_dir_reads_config_and_template(tmp_path):
  _write_hf_dir(tmp_path, with_config=True)
  tok = Tokenizer.from_hf_dir(tmp_path)
  assert tok.vocab_size == 11
  assert tok.eos_ids == (3, 2, 0)   # config eos, generation_config eos, then known end markers
  assert (tok.pad_id, tok.bos_id) == (0, None)
  assert tok.encode("abc ab") == [10, 6, 9, 10]
  assert tok.decode([1, 10, 2]) == "ab"
  messages = [{"role": "user", "content": "ab"}]
  assert tok.apply_chat_template(messages) == "[user]ab[assistant]"
  assert tok.encode_chat(messages, add_generation_prompt=False) == tok.encode("[user]ab")


def test_from_hf_dir_without_config_falls_back_to_chatml(tmp_path):
  _write_hf_dir(tmp_path, with_config=False)
  tok = Tokenizer.from_hf_dir(tmp_path)
  assert tok.eos_ids == (2, 0) and tok.pad_id == 2
  assert tok.apply_chat_template([{"role": "user", "content": "ab"}]) == (
      "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n")
