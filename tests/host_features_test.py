"""Host features: think split, repetition, DECS judge, DOT cut + re-check, LASER monitor, and the
sampler's optional per-token entropy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import components, models, rollout, testing
from concise_jax.models import tiny
from concise_jax.rewards import REWARDS, dot, laser
from concise_jax.train import host_features as hf
from configs import common

TOK = tiny.CharTokenizer()


class RecordingCheck:
  """Fake verifier: right iff the reference appears in the text; records what it saw."""

  def __init__(self):
    self.seen = []

  def __call__(self, texts, refs, kinds):
    self.seen += list(texts)
    return [r in t for t, r in zip(texts, refs)]


def _rollout(texts, correct, width=None):
  ids = [TOK.encode(t) for t in texts]
  width = width or max(len(i) for i in ids)
  batch = testing.make_rollout(correct, [len(i) for i in ids], max_len=width)
  tokens = np.zeros((len(ids), width), np.int32)
  for k, row in enumerate(ids):
    tokens[k, :len(row)] = row
  return jax.tree.map(np.asarray, batch.replace(tokens_bt=tokens))


def _config(reward, **kw):
  c = common.base_config()
  c.reward.name = reward
  c.rollout.group_size = kw.pop("group_size", 2)
  for k, v in kw.items():
    c.reward[reward][k] = v
  return c


# ---- think / answer split ----------------------------------------------------------------------

def test_answer_phase_start():
  assert hf.answer_phase_start("let me think</think>so 7") == len("let me think")
  # No tag: the last line with an explicit answer marker starts the answer phase.
  text = "step 1\nanswer: 3?\nstep 2\nanswer: 7\n"
  assert hf.answer_phase_start(text) == len("step 1\nanswer: 3?\nstep 2\n")
  assert hf.answer_phase_start("#### 7") == 0
  # No marker at all: everything is thinking (PEAR's missing-tag rule); empty text too.
  assert hf.answer_phase_start("3 + 4 is 7") == len("3 + 4 is 7")
  assert hf.answer_phase_start("") == 0


def test_think_mask_row_aligns_tokens():
  pieces = list("ab\nanswer: 7")           # one char per token; answer line starts at char 3
  np.testing.assert_array_equal(hf.think_mask_row(pieces, 14), [1, 1, 1] + [0] * 11)
  # Multi-char pieces: a token that starts before the boundary is thinking.
  np.testing.assert_array_equal(hf.think_mask_row(["ab", "c\n", "answer: 7"], 4), [1, 1, 0, 0])
  np.testing.assert_array_equal(hf.think_mask_row([], 3), [0, 0, 0])


# ---- repetition ----------------------------------------------------------------------------------

def test_is_repetitive():
  assert hf.is_repetitive([1, 2, 3] * 3, ngram=3, min_repeats=3)       # (1,2,3) at 0, 3, 6
  assert not hf.is_repetitive([1, 2, 3] * 3, ngram=4, min_repeats=3)   # (1,2,3,1) twice only
  assert hf.is_repetitive([5] * 22, ngram=20, min_repeats=3)           # overlapping windows
  assert not hf.is_repetitive([5] * 21, ngram=20, min_repeats=3)
  assert not hf.is_repetitive([], ngram=1, min_repeats=1)


# ---- DECS judge ------------------------------------------------------------------------------------

def test_newline_chunks_and_first_correct_line_judge():
  pieces = list("x=3\ny=7\nso 7")
  assert hf.newline_chunks(pieces) == [(0, 4), (4, 8), (8, 12)]
  assert hf.newline_chunks(list("ab\n")) == [(0, 3)]
  check = RecordingCheck()
  judge = hf.REDUNDANCY_JUDGES.get("first_correct_line")(check)
  masks = judge([pieces, list("7"), list("x\ny")], ["7", "7", "7"], ["n", "n", "n"])
  # Row 0: chunk 1 ("y=7\n") holds the answer → chunk 2 (tokens 8..11) redundant.
  np.testing.assert_array_equal(masks[0], [0] * 8 + [1] * 4)
  # Row 1: the only chunk holds it → nothing after it. Row 2: never accepted → nothing.
  np.testing.assert_array_equal(masks[1], [0])
  np.testing.assert_array_equal(masks[2], [0, 0, 0])
  assert check.seen == ["x=3\n", "y=7\n", "so 7", "7", "x\n", "y"]   # one batched call


# ---- the feature hook ------------------------------------------------------------------------------

def test_default_runs_need_nothing():
  assert hf.make_host_features(_config("correctness"), TOK, RecordingCheck()) is None
  assert not hf.needs_entropy(_config("correctness"))
  assert hf.needs_entropy(_config("pear")) and hf.needs_entropy(_config("ceeh"))
  assert not hf.needs_entropy(_config("ceeh", entropy_mode="me"))   # a conditional need
  assert hf.make_host_features(_config("ceeh"), TOK, RecordingCheck()) is None  # sampler only
  # ARLCP's keyword counts run only when ARLCP is selected.
  assert hf.make_host_features(_config("arlcp"), TOK, RecordingCheck()).wanted == {
      "reflection_count": {k: o.default for k, o in
                           REWARDS.component("arlcp").options.items()}}


def test_needs_come_from_the_selected_components_with_their_options():
  config = _config("laser_de", ngram=2)
  config.advantage.name = "gtpo"
  wanted = components.needs(config)
  assert list(wanted) == ["band_monitor", "repetitive", "entropy"]   # reward first, then adv.
  assert wanted["repetitive"]["ngram"] == 2 and wanted["repetitive"]["min_repeats"] == 3
  assert list(components.needs(_config("dot"))) == ["cut_length", "cut_correct"]
  assert components.needs(_config("efficient_reasoning")) == {}


def test_a_need_without_a_provider_fails_naming_the_providers(monkeypatch):
  monkeypatch.setattr(components, "needs", lambda config: {"telepathy": {}})
  with pytest.raises(KeyError, match="cut_correct, cut_length"):
    hf.make_host_features(_config("correctness"), TOK, RecordingCheck())


def test_decs_features_judge_correct_rows_only():
  check = RecordingCheck()
  features = hf.make_host_features(_config("decs"), TOK, check)
  batch = _rollout(["a=7\nb\n", "7\n", "no\n7"], [1, 0, 1], width=8)
  out = features(batch, ["", "", ""], ["7", "7", "7"], ["n"] * 3)
  # Row 0: "a=7\n" holds 7 → "b\n" redundant; row 1 wrong → zeros; row 2: answer in the last
  # chunk → nothing redundant. Padding stays 0.
  np.testing.assert_array_equal(out.features["redundant_mask"],
                                [[0, 0, 0, 0, 1, 1, 0, 0], [0] * 8, [0] * 8])
  assert "7\n" not in check.seen[:2] and len(check.seen) == 4   # 2 + 2 chunks, wrong row skipped


def test_laser_de_and_pear_features():
  batch = _rollout(["ab" * 6, "abcdef\nanswer: 7"], [0, 1])
  out = hf.make_host_features(_config("laser_de", ngram=2, min_repeats=3), TOK,
                              RecordingCheck())(batch, [], [], [])
  np.testing.assert_array_equal(out.features["repetitive"], [True, False])
  out = hf.make_host_features(_config("pear"), TOK, RecordingCheck())(batch, [], [], [])
  np.testing.assert_array_equal(out.features["think_mask"][0], [1] * 12 + [0] * 4)  # no marker
  np.testing.assert_array_equal(out.features["think_mask"][1], [1] * 7 + [0] * 9)  # answer: char 7


def test_dot_features_cut_and_recheck():
  texts = ["7", "7", "7", "1" * 30 + " so 7"]          # lengths 1, 1, 1, 35; all correct
  batch = _rollout(texts, [1, 1, 1, 1])
  check = RecordingCheck()
  config = _config("dot", group_size=4, alpha=1.0, margin=8.0)
  out = hf.make_host_features(config, TOK, check)(batch, texts, ["7"] * 4, ["n"] * 4)
  # mean 9.5, std (ddof 1) = sqrt((3·8.5² + 25.5²)/3) = 17 → T = ⌊26.5⌋ = 26; 35 − 26 ≥ 8 → cut.
  np.testing.assert_array_equal(out.features["cut_length"], [1, 1, 1, 26])
  # Only the cut row is re-verified, on its first 26 tokens (no "7" left) → wrong.
  assert check.seen == ["1" * 26]
  np.testing.assert_array_equal(out.features["cut_correct"], [True, True, True, False])
  # The jnp function agrees with the host's numbers.
  np.testing.assert_array_equal(dot.cut_lengths_b(jnp.asarray([1, 1, 1, 35]),
                                                  jnp.ones(4, bool), group_size=4, alpha=1.0,
                                                  margin=8.0), [1, 1, 1, 26])


# ---- LASER-D monitor ------------------------------------------------------------------------------

def test_monitor_schedule_and_refresh():
  config = _config("laser_d", monitor_freq=3, monitor_prompts=3, monitor_samples=2,
                   grid_lower=2, grid_upper=8, grid_step=2)
  config.rollout.prompts_per_step = 2
  config.rollout.max_new_tokens = 10
  options = components.needs(config)["band_monitor"]
  assert [s for s in range(7) if hf.monitor_due(options, s)] == [0, 3, 6]
  assert "band_monitor" not in components.needs(_config("laser"))   # fixed target: no monitor
  assert hf.refresh_monitored(_config("laser"), (), [], None, 0) is None
  # Monitor prompts p0, p1, p2 in chunks of 2: [p0, p1], then [p2, p0] (padding, dropped).
  results = {"p0": ([3, 5], [1, 1]), "p1": ([4, 9], [1, 0]), "p2": ([7, 7], [0, 0])}
  calls = []

  def sample(examples, key, n):
    calls.append(list(examples))
    assert n == 2
    length = [l for e in examples for l in results[e][0]]
    correct = [c for e in examples for c in results[e][1]]
    return testing.make_rollout(correct, length)

  state = hf.refresh_monitored(config, laser.init_band_targets(4), ["p0", "p1", "p2", "p3"],
                               sample, step_index=3)
  assert calls == [["p0", "p1"], ["p2", "p0"]]
  # n = 2: p0 2/2 → high (K = ⌊4/3⌋ = 1), p1 1/2 → medium (K = ⌊2/3⌋ = 0: never reached),
  # p2 0/2 → low (K = 1). Grid 2, 4, 6, 8: high needs cov = 1 → 5 ≤ 6 → 6; medium → max 10;
  # low needs cov = 1 → 7 ≤ 8 → 8.
  np.testing.assert_allclose(state, [8, 10, 6])
  assert hf.refresh_monitored(config, state, ["p0"], sample, step_index=4) is None  # not due


# ---- sampler entropy --------------------------------------------------------------------------------

@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_sampler_entropy_flag():
  cfg = tiny.tiny_config()
  params = models.init_params(cfg, jax.random.key(0))
  tokens, mask = rollout.left_pad([[5, 6, 7], [8, 9]], pad_id=0, bucket=4)
  sp = rollout.SamplingParams(max_new_tokens=6, temperature=0.7, eos_ids=(1,))
  plain = rollout.sample(cfg, params, tokens, mask, jax.random.key(3), sp, num_samples=2)
  sp_h = rollout.SamplingParams(max_new_tokens=6, temperature=0.7, eos_ids=(1,),
                                return_entropy=True)
  with_h = rollout.sample(cfg, params, tokens, mask, jax.random.key(3), sp_h, num_samples=2)
  assert plain.entropy_bt is None
  np.testing.assert_array_equal(plain.tokens_bt, with_h.tokens_bt)   # same draws
  h = np.asarray(with_h.entropy_bt)
  assert (h[np.asarray(with_h.mask_bt) == 0] == 0).all()
  assert (h >= 0).all() and (h <= np.log(cfg.vocab_size) + 1e-5).all()
  # First token: the entropy of the tempered softmax of the prefill logits.
  logits, _ = models.transformer.prefill(cfg, params, jnp.asarray(tokens), jnp.asarray(mask), 10)
  logp = jax.nn.log_softmax(logits / 0.7, axis=-1)
  want = -(jnp.exp(logp) * logp).sum(-1)
  np.testing.assert_allclose(h[::2, 0], want, rtol=1e-4)
