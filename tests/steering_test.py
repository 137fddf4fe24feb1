"""ASC steering on the tiny model: extraction, the position rule, zero strength, KL and strength."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from concise_jax import data, models, rollout, steering
from concise_jax.models import tiny, transformer

CFG = tiny.tiny_config()
LAYER = 0


@pytest.fixture(scope="module")
def model():
  cfg, params, tok = tiny.load_tiny(0)
  return cfg, params, tok


@pytest.fixture(scope="module")
def vector():
  v = jax.random.normal(jax.random.key(7), (CFG.d_model,))
  return steering.SteeringVector(vector_d=np.asarray(v), layer=LAYER, model="tiny")


PAIRS = [steering.Pair("what is 2 + 3?", "5", "2 plus 3 is five so 5"),
         steering.Pair("what is 4 + 4?", "8", "four and four make 8"),
         steering.Pair("what is 1 + 6?", "1+6=7", "one, then six more: 7")]


@pytest.mark.integration  # compiles its own model programs: ~11 s on 2 cores
def test_extraction_equals_direct_mean_difference(model):
  cfg, params, tok = model
  vecs = steering.extract(cfg, params, tok, PAIRS, layers=(0, 1), batch=2)
  hidden = jax.jit(lambda ids: models.forward(cfg, params, ids, hidden_layers=(0, 1))[1]["hidden"])
  diffs = []
  for p in PAIRS:
    h = []
    for answer in (p.concise, p.verbose):   # unpadded, one sequence at a time
      ids = jnp.asarray([rollout.chat_ids(tok, p.problem) + tok.encode(answer)])
      h.append(np.asarray(hidden(ids)[:, 0, -1]))   # [layers, D] at the last token
    diffs.append(h[0] - h[1])
  for i, layer in enumerate((0, 1)):
    np.testing.assert_allclose(vecs[layer].vector_d, np.mean(diffs, 0)[i], atol=2e-5)
    assert vecs[layer].num_pairs == 3 and vecs[layer].layer == layer


@pytest.mark.integration
def test_injection_at_the_extraction_index(model, vector):
  """Steering(layer=L) shifts exactly the hidden state that extraction reads at L."""
  cfg, params, _ = model
  toks = jnp.asarray([[5, 6, 7, 8]])
  _, base = models.forward(cfg, params, toks, hidden_layers=(LAYER,))
  _, steered = models.forward(cfg, params, toks, hidden_layers=(LAYER,),
                              steering=vector.steering(0.5, rule="all"))
  np.testing.assert_allclose(steered["hidden"] - base["hidden"],
                             np.broadcast_to(0.5 * vector.vector_d, base["hidden"].shape),
                             atol=1e-5)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
@pytest.mark.parametrize("rule,steered_positions", [("last", [5]), ("all", list(range(6)))])
def test_position_rule_steers_exactly_those_positions(model, vector, rule, steered_positions):
  cfg, params, _ = model
  toks = jax.random.randint(jax.random.key(1), (2, 6), 4, cfg.vocab_size)
  _, base = models.forward(cfg, params, toks, hidden_layers=(LAYER,))
  _, steered = models.forward(cfg, params, toks, hidden_layers=(LAYER,),
                              steering=vector.steering(1.5, rule=rule))
  moved = np.abs(np.asarray(steered["hidden"] - base["hidden"])[0]).max(-1)  # [B, S]
  expected = np.zeros((2, 6), bool)
  expected[:, steered_positions] = True
  np.testing.assert_array_equal(moved > 1e-6, expected)
  np.testing.assert_array_equal(moved[~expected], 0.0)   # untouched positions: bit for bit


def _prompts():
  tokens, mask = rollout.left_pad([[5, 6, 7], [8, 9, 10, 11, 12]], pad_id=0, bucket=8)
  return jnp.asarray(tokens), jnp.asarray(mask)


SP = rollout.SamplingParams(max_new_tokens=10, temperature=0.7)


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_zero_strength_is_unsteered_token_for_token(model, vector):
  cfg, params, _ = model
  tokens, mask = _prompts()
  key = jax.random.key(3)
  base = rollout.sample(cfg, params, tokens, mask, key, SP)
  per_row = steering.stack_rows([vector, vector], [0.0, 0.0])
  for steer in (vector.steering(0.0), per_row):
    out = rollout.sample(cfg, params, tokens, mask, key, SP, steering=steer)
    np.testing.assert_array_equal(out.tokens_bt, base.tokens_bt)
    np.testing.assert_array_equal(out.logp_bt, base.logp_bt)
  big = rollout.sample(cfg, params, tokens, mask, key, SP, steering=vector.steering(8.0))
  assert (np.asarray(big.logp_bt) != np.asarray(base.logp_bt)).any()


def test_per_row_strength_matches_scalar_runs(model, vector):
  cfg, params, _ = model
  tokens, mask = _prompts()
  key = jax.random.key(4)
  mixed = rollout.sample(cfg, params, tokens, mask, key, SP,
                         steering=steering.stack_rows([vector, vector], [0.0, 3.0]))
  unsteered = rollout.sample(cfg, params, tokens, mask, key, SP)
  scalar = rollout.sample(cfg, params, tokens, mask, key, SP, steering=vector.steering(3.0))
  np.testing.assert_array_equal(mixed.tokens_bt[0], unsteered.tokens_bt[0])
  np.testing.assert_array_equal(mixed.tokens_bt[1], scalar.tokens_bt[1])
  np.testing.assert_allclose(mixed.logp_bt[1], scalar.logp_bt[1], atol=1e-5)


@pytest.mark.integration
def test_last_rule_decoding_equals_forward_steering_from_last_prompt_token(model, vector):
  """KV-cached decoding under "last" steers the last prompt token and every fed token: the same
  as one forward over [prompt | completion] steering positions >= S - 1 (how a training
  forward would reproduce steered rollouts)."""
  cfg, params, _ = model
  tokens, mask = _prompts()
  steer = vector.steering(2.0)
  out = rollout.sample(cfg, params, tokens, mask, jax.random.key(5), SP, steering=steer)
  seq = jnp.concatenate([tokens, out.tokens_bt], 1)
  seq_mask = jnp.concatenate([mask, out.mask_bt], 1)
  t = out.tokens_bt.shape[1]
  forward_steer = steer.replace(last_n=jnp.asarray(t + 1, jnp.int32))
  logits, _ = models.forward(cfg, params, seq, mask_bs=seq_mask, steering=forward_steer)
  logp = jax.nn.log_softmax(logits[:, tokens.shape[1] - 1:-1] / SP.temperature, -1)
  logp_bt = jnp.take_along_axis(logp, out.tokens_bt[..., None], -1)[..., 0]
  np.testing.assert_allclose(logp_bt * out.mask_bt, out.logp_bt, atol=1e-4)


def test_per_row_fields_must_match_the_batch(model, vector):
  cfg, params, _ = model
  tokens, mask = _prompts()
  with pytest.raises(ValueError, match="num_samples=1"):
    rollout.sample(cfg, params, tokens, mask, jax.random.key(0), SP, num_samples=2,
                   steering=steering.stack_rows([vector] * 4, [1.0] * 4))


@pytest.mark.integration
def test_kl_identity_equals_definition_and_respects_hoeffding():
  z = jax.random.normal(jax.random.key(0), (64, 50)) * 3.0
  dz = jax.random.normal(jax.random.key(1), (64, 50)) * jnp.linspace(0.01, 2.0, 64)[:, None]
  kl = steering.kl_identity(z, z + dz)
  np.testing.assert_allclose(kl, steering.kl_direct(z, z + dz), rtol=1e-4, atol=1e-7)
  np.testing.assert_array_less(kl, steering.hoeffding_bound(z, z + dz) + 1e-7)
  np.testing.assert_allclose(steering.kl_identity(z, z + 5.0), 0.0, atol=1e-6)  # constant shift


@pytest.mark.integration
def test_measured_kl_on_the_model_matches_identity_and_bound(model, vector):
  cfg, params, tok = model
  contexts = steering.contexts_from_pairs(tok, PAIRS)
  calibrator = steering.Calibrator(cfg, params, contexts, vector, pad_id=tok.pad_id)
  for g in (0.3, 3.0):
    m = calibrator.measure(g)
    assert m.kl > 0
    np.testing.assert_allclose(m.kl, m.kl_direct, rtol=1e-3)
    assert m.kl <= m.hoeffding <= m.hoeffding_max
  assert calibrator.measure(0.0).kl == 0.0


def test_solved_strength_hits_the_target_kl(model, vector):
  cfg, params, tok = model
  contexts = steering.contexts_from_pairs(tok, PAIRS)
  calibrator = steering.Calibrator(cfg, params, contexts, vector, pad_id=tok.pad_id)
  for target in (0.002, 0.008):   # the tiny model saturates near KL 0.016
    result = steering.calibrate(calibrator, target, rtol=0.01)
    again = calibrator.measure(result.strength)   # re-measured independently
    assert abs(again.kl - target) <= 0.01 * target
    assert again.kl <= again.hoeffding


def test_solve_strength_on_a_known_curve():
  g = steering.solve_strength(lambda g: 0.5 * g**2, 0.08, rtol=1e-4)   # exact answer 0.4
  np.testing.assert_allclose(g, 0.4, rtol=1e-4)
  assert steering.solve_strength(lambda g: g, 0.0) == 0.0


def test_save_load_round_trip(tmp_path, vector):
  vec = dataclasses.replace(vector, pairs_source="jsonl:x.jsonl", num_pairs=12,
                            extra={"calibration_kl": "0.1"})
  path = str(tmp_path / "v.safetensors")
  steering.save(vec, path)
  back = steering.load(path)
  np.testing.assert_array_equal(back.vector_d, vec.vector_d)
  assert (back.layer, back.rule, back.model, back.pairs_source, back.num_pairs, back.extra) == (
      LAYER, "last", "tiny", "jsonl:x.jsonl", 12, {"calibration_kl": "0.1"})


def test_select_pair_shortest_vs_longest_correct():
  texts = ["a", "bbbb", "cc", "dddddd"]
  pair = steering.pairs.select_pair("q", texts, [1, 4, 2, 6], [False, True, True, False])
  assert (pair.concise, pair.verbose) == ("cc", "bbbb")
  assert steering.pairs.select_pair("q", texts, [1, 4, 2, 6], [True, False, False, False]) is None
  assert steering.pairs.select_pair("q", texts, [3, 3, 2, 6], [True, True, False, False]) is None
  cut = steering.pairs.select_pair("q", texts, [1, 4, 2, 6], [True, True, True, False],
                                   finished=[True, False, True, True])   # "bbbb" was truncated
  assert (cut.concise, cut.verbose) == ("a", "cc")


def test_jsonl_pairs(tmp_path):
  path = str(tmp_path / "p.jsonl")
  steering.pairs.to_jsonl(PAIRS, path)
  assert steering.pairs.from_jsonl(path) == PAIRS
  (tmp_path / "bad.jsonl").write_text('{"problem": "q", "concise": "a"}\n')
  with pytest.raises(ValueError, match="verbose"):
    steering.pairs.from_jsonl(str(tmp_path / "bad.jsonl"))


def test_unknown_rule_is_rejected(vector):
  with pytest.raises(KeyError, match="last"):
    vector.steering(1.0, rule="first")
  assert transformer.POSITION_RULES["last"] == 1


@pytest.mark.integration  # compiles its own model programs: kept out of the < 5 min default suite
def test_pairs_from_own_samples(model):
  cfg, params, tok = model
  examples = list(data.load_dataset("task:add_1digit", n=2))
  everything_right = lambda texts, refs, kinds: [True] * len(texts)
  # Many end ids: rows stop after a random few tokens, so lengths differ within a group.
  sp = rollout.SamplingParams(max_new_tokens=8, temperature=1.0, eos_ids=tuple(range(4, 40)))
  pairs = steering.pairs.from_own_samples(cfg, params, tok, examples, jax.random.key(0), sp,
                                          everything_right, num_samples=4, batch_prompts=2)
  assert pairs and {p.problem for p in pairs} <= {ex.prompt for ex in examples}
  for p in pairs:
    assert len(p.concise) <= len(p.verbose)   # token counts differ; decoded text may tie
