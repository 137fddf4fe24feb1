r"""Evaluates a checkpoint on one or more datasets and writes JSON + Markdown results.

    python -m concise_jax.eval --checkpoint=smollm2-135m-instruct \
        --data=task:add_1digit,gsm8k:/path/gsm8k_test.jsonl --n=100 --k=4 --out_dir=/tmp/eval

Steered generation (ASC): add `--steering=vec.safetensors [--steering_strength=0.5]
[--steering_rule=last]` (vectors from `concise_jax.steering`; experiments/asc.py makes them).

Greedy pass@1 always runs (unless --nogreedy); --k > 0 adds k samples per example at
--temperature / --top_p for mean@k and unbiased pass@k. Task datasets take options after `?`
(`task:arithmetic?difficulty=1-5`, the syntax of `config.data.dataset`); files are prepared once
by the tfds builders into --data_dir and reused. Output: `results.json`, `results.md`,
`completions.jsonl` in --out_dir, and the Markdown tables on stdout.
"""
import dataclasses
import datetime
import os
import sys

import jax
from absl import app, flags

from concise_jax import distributed
from concise_jax.eval import report, runner
from concise_jax.verify import Verifier

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "'tiny', a model name, a .gguf file or an HF dir (runner.load_policy).")
_DATA = flags.DEFINE_multi_string(
    "data", None, "Dataset specs, repeatable or comma-separated: task:NAME[?difficulty=1-5], "
    "gsm8k:PATH, math:PATH, mawps:PATH.")
_N = flags.DEFINE_integer("n", 100, "Max examples per dataset (tasks generate this many).")
_K = flags.DEFINE_integer("k", 0, "Samples per example for mean@k / pass@k; 0 = greedy only.")
_GREEDY = flags.DEFINE_boolean("greedy", True, "Run the greedy pass@1 pass.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.7, "Sampling temperature of the k samples.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus mass of the k samples (1 = off).")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Top-k of the k samples (0 = off).")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Decode budget per completion.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Decode rows per call (sampled: prompts = B // k).")
_SYSTEM = flags.DEFINE_string("system", None, "System prompt; unset = the template's default.")
_INSTRUCTION = flags.DEFINE_string(
    "instruction", "none", "Instruction after each question: a data.instructions key "
    "(none, brief, answer_line, boxed, countdown) or literal text.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where to write results; unset = stdout only.")
_SEED = flags.DEFINE_integer("seed", 0, "Task generation and sampling seed.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Where dataset files are prepared by the tfds builders (once, then "
    "reused); unset = $CONCISE_JAX_DATA_DIR or ~/.cache/concise_jax/tfds.")
_MAX_PROMPT = flags.DEFINE_integer(
    "max_prompt_tokens", 0, "Cut and pad prompts to this length (training's "
    "rollout.max_prompt_tokens); 0 = pad to the longest prompt, rounded up to 64.")
_STEERING = flags.DEFINE_string(
    "steering", None, "ASC steering vector file (concise_jax.steering.save); unset = unsteered.")
_STEERING_STRENGTH = flags.DEFINE_float(
    "steering_strength", None, "Strength γ on the raw vector; unset = the file's calibrated one.")
_STEERING_RULE = flags.DEFINE_enum(
    "steering_rule", None, ["last", "all"], "Steered positions; unset = the file's rule (ASC: "
    "last = the last prompt token and every generated token).")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show tqdm progress bars.")
_SPECULATIVE = flags.DEFINE_enum(
    "speculative", "off", ["off", "eagle", "eagle_tree"],
    "Lossless speculative decoding with an EAGLE head: a chain of --num_draft tokens, or an "
    "EAGLE-2 dynamic tree (--tree_top_k/--tree_depth/--tree_nodes; accepts fewer tokens than "
    "the chain when sampling).")
_DRAFT = flags.DEFINE_string("draft", None, "Draft head: a `python -m concise_jax.draft` dir or "
                             "a training workdir holding draft/; default: --checkpoint's "
                             "workdir when it trained one (rollout.speculative).")
_NUM_DRAFT = flags.DEFINE_integer("num_draft", 4, "Drafted tokens per target forward.")
_TREE_TOP_K = flags.DEFINE_integer("tree_top_k", 4, "eagle_tree: children per expanded node.")
_TREE_DEPTH = flags.DEFINE_integer("tree_depth", 4, "eagle_tree: draft levels.")
_TREE_NODES = flags.DEFINE_integer("tree_nodes", 16, "eagle_tree: nodes the target verifies "
                                   "per forward (root included).")
_DRAFT_VOCAB = flags.DEFINE_integer("draft_vocab", 8192, "Reduced draft vocabulary; 0 = full.")
_SPEC_MAX_BATCH = flags.DEFINE_integer("speculative_max_batch", 4,
                                       "Speculate only on chunks of at most this many rows.")

_MESH = flags.DEFINE_list("mesh_shape", ["1", "-1", "1"],
                          "(data, fsdp, tensor) decode mesh; one -1 = all remaining devices.")
_JOIN_PROCESSES = distributed.define_process_flags()

flags.mark_flags_as_required(["checkpoint", "data"])


def data_specs(values: list[str]) -> list[str]:
  """Flattens repeated and comma-separated --data values, dropping blanks."""
  return [s.strip() for v in values for s in v.split(",") if s.strip()]


def settings_from_flags() -> runner.EvalSettings:
  return runner.EvalSettings(
      greedy=_GREEDY.value, k=_K.value, temperature=_TEMPERATURE.value, top_p=_TOP_P.value,
      top_k=_TOP_K.value, max_new_tokens=_MAX_NEW.value, batch_size=_BATCH.value,
      system=_SYSTEM.value, instruction=_INSTRUCTION.value, seed=_SEED.value,
      steering=_STEERING.value, steering_strength=_STEERING_STRENGTH.value,
      steering_rule=_STEERING_RULE.value, max_prompt_tokens=_MAX_PROMPT.value)


def run_config(specs: list[str], settings: runner.EvalSettings) -> dict:
  """The settings stored with the results (enough to re-run the evaluation)."""
  return {"checkpoint": _CHECKPOINT.value, "data": specs, "n": _N.value, **vars(settings),
          "backend": jax.default_backend(), "argv": sys.argv[1:],
          "date": datetime.datetime.now().isoformat(timespec="seconds")}


def _draft_dir() -> str:
  """--draft, or the evaluated training workdir's own head (written by the training loop)."""
  if _DRAFT.value:
    return _DRAFT.value
  ckpt = _CHECKPOINT.value or ""
  if os.path.isdir(os.path.join(ckpt, "draft")):
    return ckpt
  raise app.UsageError(f"--speculative={_SPECULATIVE.value} needs --draft (a draft dir or a training workdir "
                       "holding draft/)")


def main(argv):
  del argv
  _JOIN_PROCESSES()
  specs = data_specs(_DATA.value)
  settings = settings_from_flags()
  datasets = {runner.dataset_label(s): (s, runner.load_examples(s, _N.value, _SEED.value,
                                                               data_dir=_DATA_DIR.value))
              for s in specs}  # load every dataset first: a bad spec fails before the model
  policy = runner.load_policy(_CHECKPOINT.value)
  if _SPECULATIVE.value != "off":
    # The speculative sampler decodes on one device (it is not sharded yet).
    if jax.process_count() > 1 or _STEERING.value:
      raise app.UsageError("--speculative runs in a single process, without --steering")
    from concise_jax import draft  # pylint: disable=import-outside-toplevel
    from concise_jax.draft import checkpoint as draft_ckpt  # pylint: disable=import-outside-toplevel
    from concise_jax.rollout import speculative, speculative_tree  # pylint: disable=import-outside-toplevel
    if _SPECULATIVE.value == "eagle_tree":
      try:
        spec = speculative_tree.TreeParams(top_k=_TREE_TOP_K.value, depth=_TREE_DEPTH.value,
                                           num_nodes=_TREE_NODES.value)
      except ValueError as e:
        raise app.UsageError(f"--tree_top_k/--tree_depth/--tree_nodes: {e}") from e
    else:
      spec = speculative.SpecParams(num_draft=_NUM_DRAFT.value)
    policy = dataclasses.replace(policy, speculative=(
        draft.EagleDrafter(policy.cfg), draft_ckpt.load(_draft_dir(), _DRAFT_VOCAB.value),
        spec, _SPEC_MAX_BATCH.value))
  else:
    policy = runner.place_on_mesh(policy, tuple(int(x) for x in _MESH.value))
  per_dataset = {}
  with Verifier() as verifier:
    for label, (spec, examples) in datasets.items():
      records, throughput = runner.evaluate_dataset(
          policy, examples, settings, verifier, label=label, progress=_PROGRESS.value)
      per_dataset[label] = (spec, records, throughput)
  if not distributed.is_lead():   # every process computed the same results; one reports
    return
  results = report.build_results(run_config(specs, settings), per_dataset)
  print(report.markdown(results))
  if _OUT_DIR.value:
    paths = report.write(_OUT_DIR.value, results,
                         {label: recs for label, (_, recs, _) in per_dataset.items()})
    print("wrote " + ", ".join(paths))


if __name__ == "__main__":
  app.run(main)
