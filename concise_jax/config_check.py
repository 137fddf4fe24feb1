"""Launch-time config checks: every name against its registry, every option against its type.

`main.py` runs these before the workdir exists, so a typo costs a one-line error naming the
bad key or name and the valid choices, not a half-written run directory. Validation reads the
component registries themselves (never a hand-written list of their names) and imports
nothing heavier than them: names owned by the model loaders, the data pipeline and the
trainer come from `known_names`, so a bad flag is reported before jax compiles anything.
"""
import pathlib
from collections.abc import Sequence

import ml_collections

from concise_jax import known_names, options
from concise_jax.advantages import base as advantage_base

# config.<section>.name → the registry it must name; config.<section>.<name> holds its options.
NAMED_SECTIONS = options.SECTIONS


def _registry_errors(config) -> list[str]:
  errors = []
  for section, registry in NAMED_SECTIONS.items():
    name = config[section].name
    if name not in registry:
      if section == "advantage" and name in advantage_base.CRITIC_ADVANTAGES:
        # A critic estimator (GAE / EGAE) picked for a trainer without a critic: say why.
        errors.append(f"config.{section}.name: "
                      + advantage_base.trainer_error(name, config.get("trainer", "")))
        continue
      errors.append(f"config.{section}.name: unknown {registry.kind} {name!r}; valid choices: "
                    f"{', '.join(registry.names())}")
    elif name not in config[section]:
      errors.append(f"config.{section}.{name}: missing options sub-dict (build the section "
                    "with options.section_config)")
  if config.optim.schedule not in known_names.LR_SCHEDULES:
    errors.append(f"config.optim.schedule: unknown lr schedule {config.optim.schedule!r}; "
                  f"valid choices: {', '.join(known_names.LR_SCHEDULES)}")
  return errors


def _model_errors(config) -> list[str]:
  errors = []
  models = (known_names.TEST_MODEL, *known_names.MODELS)
  for key in ("model.name", "teacher.model"):
    name = _get(config, key)
    if key == "teacher.model" and name in ("", "init", _MISSING):
      continue
    if name not in models and not pathlib.Path(name).exists():
      errors.append(f"config.{key}: unknown model {name!r} (not an existing path); valid "
                    f"choices: {', '.join([known_names.TEST_MODEL, *sorted(known_names.MODELS)])}")
  if config.model.lora.rank > 0:
    targets = config.model.lora.targets
    names = [n for n in (n.strip() for n in targets.split(",")) if n]
    unknown = [n for n in names if n not in known_names.LORA_TARGETS]
    if unknown or not names:
      errors.append(f"config.model.lora.targets: unknown LoRA target(s) {unknown or names!r}; "
                    f"valid choices: {', '.join(sorted(known_names.LORA_TARGETS))}")
  return errors


def _data_errors(config) -> list[str]:
  errors = []
  for key in ("data.dataset", "data.eval_dataset"):
    spec = _get(config, key)
    if spec is _MISSING or (key == "data.eval_dataset" and not spec):
      continue
    kind, sep, target = spec.partition(":")
    kinds = known_names.DATASET_KINDS
    if not sep or kind not in kinds:
      errors.append(f"config.{key}: {spec!r} must be 'kind:name_or_path' with kind one of: "
                    f"{', '.join(kinds)}")
      continue
    task = target.partition("?")[0]     # task:<name>?difficulty=... carries generator options
    if kind == "task" and task not in known_names.TASKS:
      errors.append(f"config.{key}: unknown task {task!r}; valid choices: "
                    f"{', '.join(known_names.TASKS)}")
  return errors


def _shape_errors(config) -> list[str]:
  """Batch arithmetic that would otherwise fail only after the first rollout."""
  errors = []
  rows = config.rollout.prompts_per_step * config.rollout.group_size
  mb = config.optim.num_minibatches
  if mb < 1 or rows % mb:
    errors.append(f"config.optim.num_minibatches={mb} must divide the batch of "
                  f"{rows} rows (prompts_per_step × group_size)")
  elif 0 < config.optim.micro_batch < rows // mb and (rows // mb) % config.optim.micro_batch:
    errors.append(f"config.optim.micro_batch={config.optim.micro_batch} must divide the "
                  f"minibatch of {rows // mb} rows")
  if config.train.ppo_epochs < 1:
    errors.append("config.train.ppo_epochs must be >= 1")
  if len(config.mesh.shape) != 3:
    errors.append(f"config.mesh.shape {tuple(config.mesh.shape)} needs 3 entries "
                  "(data, fsdp, tensor)")
  if len(config.mesh.dcn_shape) != 3 or min(config.mesh.dcn_shape) < 1:
    errors.append(f"config.mesh.dcn_shape {tuple(config.mesh.dcn_shape)} needs 3 positive "
                  "entries (data, fsdp, tensor across slices)")
  return errors


# --------------------------------------------------------------------------- ranges

_INT, _NUM = "an integer", "a number"
# (dotted key, kind, lowest, highest, lowest allowed?, highest allowed?): one row per option, so
# that each row can move next to its option's declaration. None = unbounded on that side.
RANGES: tuple[tuple[str, str, float | None, float | None, bool, bool], ...] = (
    ("seed", _INT, None, None, True, True),
    ("model.lora.rank", _INT, 0, None, True, True),
    ("model.lora.alpha", _NUM, 0, None, False, True),
    ("data.num_prompts", _INT, 1, None, True, True),
    ("rollout.prompts_per_step", _INT, 1, None, True, True),
    ("rollout.group_size", _INT, 1, None, True, True),
    ("rollout.max_new_tokens", _INT, 1, None, True, True),
    ("rollout.max_prompt_tokens", _INT, 1, None, True, True),
    ("rollout.temperature", _NUM, 0, None, True, True),      # 0 = greedy, explicitly
    ("rollout.top_p", _NUM, 0, 1, False, True),
    ("rollout.top_k", _INT, 0, None, True, True),              # 0 = off
    ("rollout.max_refill_batches", _INT, 1, None, True, True),
    ("rollout.speculative.num_draft", _INT, 1, None, True, True),
    ("rollout.speculative.lr", _NUM, 0, None, False, True),
    ("rollout.speculative.feature_weight", _NUM, 0, None, True, True),
    ("rollout.speculative.ce_weight", _NUM, 0, None, True, True),
    ("rollout.speculative.draft_vocab", _INT, 0, None, True, True),   # 0 = full vocabulary
    ("verify.num_workers", _INT, 0, None, True, True),
    ("verify.timeout_s", _NUM, 0, None, False, True),
    ("kl.coef", _NUM, 0, None, True, True),
    ("optim.lr", _NUM, 0, None, False, True),
    ("optim.warmup_steps", _INT, 0, None, True, True),
    ("optim.b1", _NUM, 0, 1, True, False),
    ("optim.b2", _NUM, 0, 1, True, False),
    ("optim.eps", _NUM, 0, None, True, True),
    ("optim.weight_decay", _NUM, 0, None, True, True),
    ("optim.num_minibatches", _INT, 1, None, True, True),
    ("optim.micro_batch", _INT, 0, None, True, True),          # 0 = the whole minibatch
    ("optim.length_buckets", _INT, 0, None, True, True),       # 0 / 1 = off
    ("train.steps", _INT, 1, None, True, True),
    ("train.ppo_epochs", _INT, 1, None, True, True),
    ("train.logp_chunk", _INT, 1, None, True, True),
    ("train.memory_budget_gb", _NUM, 0, None, True, True),     # 0 = keep model.remat
    ("train.ckpt_every", _INT, 1, None, True, True),
    ("train.keep_ckpts", _INT, 1, None, True, True),
    ("train.keep_every", _INT, 0, None, True, True),           # 0 = off
    ("train.log_every", _INT, 1, None, True, True),
    ("train.weight_merge.top_fraction", _NUM, 0, 1, True, True),   # 0 = off
    ("train.weight_merge.scale", _NUM, 0, None, True, True),
    ("eval.every", _INT, 0, None, True, True),                 # 0 = never
    ("eval.num_prompts", _INT, 1, None, True, True),
    ("eval.temperature", _NUM, 0, None, True, True),
    ("eval.samples_per_prompt", _INT, 1, None, True, True),
    ("tppo.window", _INT, 1, None, True, True),                # configs/tppo.py only
    ("tppo.advantage.egae.gamma", _NUM, 0, 1, True, True),
    ("tppo.advantage.egae.lam_policy", _NUM, 0, 1, True, True),
    ("tppo.advantage.egae.lam_critic", _NUM, 0, 1, True, True),
    ("tppo.advantage.egae.alpha", _NUM, 0, None, True, True),  # 0 = fixed lam_policy
    ("tppo.advantage.egae.drop_last_n", _INT, 0, None, True, True),
    ("tppo.advantage.gae.gamma", _NUM, 0, 1, True, True),
    ("tppo.advantage.gae.lam", _NUM, 0, 1, True, True),
    ("tppo.value_clip", _NUM, 0, None, True, True),
    ("tppo.value_coef", _NUM, 0, None, True, True),
    ("tppo.critic_lr", _NUM, 0, None, False, True),
)
CHOICES = {"train.on_bad_ckpt": ("fallback", "stop"), "data.bad_rows": ("error", "drop"),
           "rollout.steering.rule": ("last", "all"),
           "rollout.speculative.draft": ("eagle",),
           "model.dtype": ("bfloat16", "float16", "float32"),
           "model.param_dtype": ("bfloat16", "float16", "float32"),
           "model.remat": known_names.REMAT_POLICIES,
           # tppo_update.CRITIC_MODES, tppo_rollouts.REFRESH_CHOICES, gae.LAMBDA_LENGTH_RULES,
           # advantages.base.CRITIC_ADVANTAGES
           "tppo.critic": ("head", "separate"), "tppo.refresh": ("keep", "reprefill"),
           "tppo.advantage.name": ("egae", "gae"),
           "tppo.advantage.egae.lambda_length": ("current", "batch_mean")}
# Advantages that do not compare a sample with its group; every other one needs G >= 2.
GROUP_FREE_ADVANTAGES = ("reinforce_pp",)


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return _MISSING
    node = node[part]
  return node


_MISSING = object()


def _is_number(value, kind: str) -> bool:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return False
  return kind == _NUM or isinstance(value, int)


def _interval(lo, hi, lo_in: bool, hi_in: bool) -> str:
  left = "(-inf" if lo is None else ("[" if lo_in else "(") + f"{lo:g}"
  right = "inf)" if hi is None else f"{hi:g}" + ("]" if hi_in else ")")
  return f"{left}, {right}"


def _range_errors(config) -> list[str]:
  """Each option outside its range: `config.key=value: must be an integer in [1, inf)`."""
  errors = []
  for key, kind, lo, hi, lo_in, hi_in in RANGES:
    value = _get(config, key)
    if value is _MISSING:
      continue
    ok = _is_number(value, kind) and not (
        lo is not None and (value < lo or (value == lo and not lo_in))) and not (
        hi is not None and (value > hi or (value == hi and not hi_in)))
    if not ok:
      errors.append(f"config.{key}={value!r}: must be {kind} in {_interval(lo, hi, lo_in, hi_in)}")
  for key, valid in CHOICES.items():
    value = _get(config, key)
    if value is not _MISSING and value not in valid:
      errors.append(f"config.{key}={value!r}: valid choices: {', '.join(valid)}")
  return errors


def _relation_errors(config) -> list[str]:
  """Options that are fine alone but not together."""
  errors = []
  g, name = config.rollout.group_size, config.advantage.name
  if name not in GROUP_FREE_ADVANTAGES and isinstance(g, int) and g < 2:
    errors.append(f"config.rollout.group_size={g}: advantage {name!r} compares each sample with "
                  "its group, so it needs group_size >= 2 (1 gives zero advantages)")
  if name not in GROUP_FREE_ADVANTAGES and config.rollout.temperature == 0 and g > 1:
    errors.append("config.rollout.temperature=0 (greedy): the group's samples are identical and "
                  f"advantage {name!r} is zero for all; use a temperature > 0")
  cap = config.rollout.max_new_tokens
  for key in ("reward.dler.max_len", "reward.drpo.max_len"):
    value = _get(config, key)
    if _is_number(value, _NUM) and isinstance(cap, int) and not 0 < value <= cap:
      errors.append(f"config.{key}={value!r}: must be in (0, rollout.max_new_tokens={cap}]")
  alpha = _get(config, "reward.dot.alpha")
  if config.reward.name == "dot" and _is_number(alpha, _NUM) and isinstance(g, int) and g >= 1:
    # With ddof=1, no sample of G lies more than (G - 1) / sqrt(G) deviations above its mean.
    most = (g - 1) / g ** 0.5
    if alpha >= most:
      errors.append(f"config.reward.dot.alpha={alpha!r}: DOT cuts lengths more than alpha "
                    f"standard deviations above their group's mean, but in a group of "
                    f"rollout.group_size={g} none lies more than (G-1)/sqrt(G) = {most:.2f} above "
                    f"it, so nothing would ever be cut; use alpha < {most:.2f} or a larger group "
                    f"(the paper: alpha 3 with G = 32)")
  budget = config.budget[config.budget.name] if config.budget.name in config.budget else {}
  for key, value in budget.items():
    values = value if isinstance(value, tuple) else (value,)
    if key in ("start", "floor", "low", "high", "easy_cap", "min_budget", "limits") and any(
        _is_number(v, _NUM) and isinstance(cap, int) and v > cap for v in values):
      errors.append(f"config.budget.{config.budget.name}.{key}={value!r}: token budgets must be "
                    f"<= rollout.max_new_tokens={cap} (values <= 1 are fractions of it)")
  return errors + _requirement_errors(config)


# Components that read something only another section provides: (section, names, requirement).
TEACHER_LOSSES = ("kdrl", "dph_rl")           # log-probs of a frozen teacher (or pi_0)
BUDGET_STATING_REWARDS = ("l1_exact", "l1_max")   # the budget n stated in the prompt (L1)
# (dotted tuple option, dotted tuple it must be one longer than): tiers and their values.
TIER_LENGTHS = (("reward.da_dler.caps", "reward.da_dler.thresholds"),
                ("reward.arlcp.reflection_weights", "reward.arlcp.count_thresholds"))


def _requirement_errors(config) -> list[str]:
  """Cross-section requirements, checked here so they fail before the workdir exists."""
  errors = []
  loss, reward = config.loss.name, config.reward.name
  if loss in TEACHER_LOSSES and not _get(config, "teacher.model"):
    errors.append(f"config.loss.name={loss!r} needs config.teacher.model (\"init\" = the initial "
                  "policy, or a model sharing the student's tokenizer)")
  template = _get(config, "budget.prompt_template")
  if reward in BUDGET_STATING_REWARDS and (not isinstance(template, str) or "{n}" not in template):
    errors.append(f"config.reward.name={reward!r} needs config.budget.prompt_template stating the "
                  "budget with {n} (e.g. \"Think for {n} tokens.\")")
  for longer, shorter in TIER_LENGTHS:
    a, b = _get(config, longer), _get(config, shorter)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) != len(b) + 1:
      errors.append(f"config.{longer}={a!r}: needs len(config.{shorter}) + 1 = {len(b) + 1} "
                    "entries (one per tier)")
  return errors


# Rewards whose length term (and CEEH's hard-prompt flag) compare a prompt with its own earlier
# groups, from per-prompt tables: they act only once a prompt comes back.
PROMPT_HISTORY_REWARDS = ("ceeh", "hapo_cosine", "hapo_linear")


def notices(config: ml_collections.ConfigDict) -> list[str]:
  """Valid settings that are probably not what was meant: printed at launch, not refused."""
  out = []
  reward, dataset = config.reward.name, str(config.data.dataset)
  if reward in PROMPT_HISTORY_REWARDS and dataset.startswith("task:"):
    steps, per_step = config.train.steps, config.rollout.prompts_per_step
    if steps * per_step <= config.data.num_prompts:
      out.append(f"config.reward.name={reward!r} compares each prompt with its own earlier "
                 f"answers, but {steps} steps x {per_step} prompts draw {steps * per_step} of "
                 f"data.num_prompts={config.data.num_prompts} without coming back to any, so "
                 "it never acts and the run is correctness-only GRPO; train longer or use "
                 "fewer prompts")
  return out


def validate(config: ml_collections.ConfigDict) -> list[str]:
  """All problems found in `config` (empty when it can launch)."""
  errors = _range_errors(config) + options.errors(config)
  if errors:   # the checks below do arithmetic on these values
    return errors
  return (_registry_errors(config) + _model_errors(config) + _data_errors(config)
          + _shape_errors(config) + _relation_errors(config))


def unknown_override(config: ml_collections.ConfigDict, dotted: str) -> str | None:
  """Why `--config.<dotted>=...` cannot apply to `config`, or None if the key exists.

  ml_collections rejects unknown keys with a traceback and at most one suggestion; this names
  the key and lists every valid key at the level where it went wrong.
  """
  node, path = config, []
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = "config" + "".join(f".{p}" for p in path)
      valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      return (f"unknown config key {'config.' + dotted!r}: {where} has no key {part!r}; "
              f"valid choices: {', '.join(valid) or '(none: it is a value, not a section)'}")
    node, path = node[part], path + [part]
  return None


def override_keys(argv: Sequence[str], flag: str = "config") -> list[str]:
  """Dotted keys of `--config.a.b=v` / `--config.a.b v` overrides in a command line."""
  return [key for key, _ in overrides(argv, flag)]


def overrides(argv: Sequence[str], flag: str = "config") -> list[tuple[str, str | None]]:
  """(dotted key, value text) of each `--config.a.b=v` / `--config.a.b v` override (None: no
  value follows)."""
  out = []
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{flag}."):
      key, sep, text = arg[len(flag) + 3:].partition("=")
      if not sep:
        text = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
      out.append((key, text))
  return out
