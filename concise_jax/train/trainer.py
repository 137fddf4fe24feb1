"""Setting a training run up: `make_trainer(config)` → `Trainer`.

    with make_trainer(config) as trainer:
      state, metrics = loop.train_step(trainer, trainer.state, 0)

Loads the model (and teacher), splits trainable from frozen params (LoRA adapters on a frozen
base, a KL reference copy), builds the mesh and the jitted update — compiled once per
`step.UpdateSpec`, i.e. per set of options the update reads —, the scoring, filter and budget
functions of the selected components, the data iterator and the step-0 state on the mesh.
`loop.run`, evaluation, the tests and the benchmarks all set runs up through here.

Randomness: the tiny model's init and LoRA's A use fold_in(key(seed), 0); sampling keys derive
from `Trainer.sample_rng` = fold_in(key(seed), 2).
"""
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from concise_jax import components, data, distributed, filters, models, options, sharding
from concise_jax.draft import online as online_draft
from concise_jax.models import tiny
from concise_jax.train import checkpoint, host_features, lora, memory_budget, rollout_step, step
from concise_jax.train import weight_merge
from concise_jax.train.state import TrainState, init_train_state, state_shardings
from concise_jax.train.state import with_state_leaves
from concise_jax.verify import Verifier


# One jit instead of ~40 eager initialiser dispatches (each compiles on first use).
init_params = jax.jit(models.init_params, static_argnums=0)


def load_model(config) -> tuple[models.ModelConfig, dict, Any]:
  """(model config with the run's remat and dtypes, params, tokenizer) for `config.model.name`.

  Params are held in `model.param_dtype` (float32 master weights, so the optimizer moments are
  float32 too); the forward casts them to the compute `model.dtype` (bfloat16 on TPU/GPU).
  """
  if config.model.name == "tiny":
    model_cfg = tiny.tiny_config(remat=config.model.remat)
    params = init_params(model_cfg, jax.random.fold_in(jax.random.PRNGKey(config.seed), 0))
    tokenizer = tiny.CharTokenizer()
  else:
    model_cfg, params, tokenizer = models.load(config.model.name)
  model_cfg = model_cfg.replace(remat=config.model.remat, dtype=config.model.dtype,
                                param_dtype=config.model.param_dtype)
  params = jax.tree.map(lambda x: x.astype(model_cfg.param_dtype), params)
  return model_cfg, params, tokenizer


def data_dir(config) -> str:
  """Where data files are prepared by the tfds builders: `config.data.data_dir`, or else
  `$CONCISE_JAX_DATA_DIR` / `~/.cache/concise_jax/tfds`."""
  from concise_jax.data import tfds_builders  # pylint: disable=import-outside-toplevel  # heavy
  return config.data.get("data_dir", "") or tfds_builders.default_data_dir()


def _load(spec: str, split: str, n: int, seed: int, bad_rows: str = "error",
          prepared_dir: str | None = None) -> list:
  """Tasks (with `?option=` queries) are generated for `split`; files keep the split their name
  says and are read through the tfds builders, prepared once into `prepared_dir`."""
  if data.parse_data_spec(spec).kind == "task":
    return list(data.load_dataset(spec, split=split, n=n, seed=seed))
  return list(data.load_dataset(spec, data_dir=prepared_dir, bad_rows=bad_rows))


def load_trained_policy(workdir: str, step: int | None = None):
  """(model config, full params with LoRA merged, tokenizer, step) of a training workdir.

  With `train.weight_merge.top_fraction > 0` in the run's config, the params are DLER's
  update-selective merge of the trained weights into the initial ones (`weight_merge`), so
  evaluation and export see the merged policy the run was configured to produce.
  """
  trained, config, step = checkpoint.restore_params(workdir, step)
  config = ml_collections.ConfigDict(config)
  model_cfg, params, tokenizer = load_model(config)
  if config.model.lora.rank > 0:
    tuned = lora.merge(params, trained, alpha=config.model.lora.alpha,
                       rank=config.model.lora.rank)
  else:
    tuned = trained
  tuned = jax.tree.map(jax.numpy.asarray, tuned)
  merge = config.train.get("weight_merge")
  if merge is not None and merge.top_fraction > 0:
    tuned = weight_merge.update_selective_merge(
        params, tuned, top_fraction=merge.top_fraction, scale=merge.scale,
        per_tensor=merge.per_tensor)
  return model_cfg, tuned, tokenizer, step


def load_prompts(config) -> tuple[list, list]:
  """(train examples, eval examples); eval is the test split of a task unless given."""
  prepared_dir = data_dir(config)
  train = _load(config.data.dataset, "train", config.data.num_prompts, config.seed,
                config.data.bad_rows, prepared_dir)
  eval_spec = config.data.eval_dataset or (
      config.data.dataset if config.data.dataset.startswith("task:") else "")
  if config.eval.every <= 0 or not eval_spec:
    return train, []
  return train, _load(eval_spec, "test", config.eval.num_prompts, config.seed,
                      config.data.bad_rows, prepared_dir)[:config.eval.num_prompts]


def split_trainable(config, model_cfg, params: dict) -> tuple[Any, dict, Any]:
  """(trainable tree, frozen dict, logical axes of the trainable tree).

  LoRA trains adapters on a frozen base (which doubles as the KL reference); full fine-tuning
  trains the params and keeps a frozen copy only when the KL term needs a reference.
  """
  axes = models.param_axes(model_cfg)
  teacher = {"teacher": load_teacher(config, model_cfg, params)[1]} if config.teacher.model else {}
  if config.model.lora.rank > 0:
    targets = lora.parse_targets(config.model.lora.targets)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0), 1)
    adapters = lora.init_lora(params, key, rank=config.model.lora.rank, targets=targets)
    return adapters, {"base": params, **teacher}, lora.lora_axes(axes, targets)
  frozen = {"ref": params} if config.kl.coef != 0.0 else {}
  return params, {**frozen, **teacher}, axes


def load_teacher(config, model_cfg, params: dict) -> tuple[models.ModelConfig, dict]:
  """(teacher config, teacher params) for `config.teacher.model` (KDRL, DPH-RL).

  "init" is the initial policy itself (DPH-RL's pi_0); "tiny" a second, differently seeded tiny
  model (tests); anything else a model name or path loaded like `model.name`, which must share
  the student's vocabulary (the loss compares log-probs of the same token ids).
  """
  name = config.teacher.model
  if name == "init":
    return model_cfg, params
  if name == "tiny":
    cfg = tiny.tiny_config(remat=config.model.remat)
    return cfg, init_params(cfg, jax.random.fold_in(jax.random.PRNGKey(config.seed), 3))
  cfg, teacher_params = _load_named_teacher(name)
  if cfg.vocab_size != model_cfg.vocab_size:
    raise ValueError(f"teacher {name!r} has vocab {cfg.vocab_size}, the student "
                     f"{model_cfg.vocab_size}; they must share a tokenizer")
  return cfg.replace(remat=config.model.remat), teacher_params


@functools.lru_cache(maxsize=1)
def _load_named_teacher(name: str) -> tuple[models.ModelConfig, dict]:
  cfg, params, _ = models.load(name)
  return cfg, params


@dataclasses.dataclass
class Functions:
  """The run's jitted pieces."""
  update: Callable          # (state, frozen, UpdateBatch) -> (state, metrics)
  score: Callable           # (states, rollout) -> (reward_out, states, metrics)
  keep: Callable            # (rollout, reward_out) -> keep_b
  model_params: Callable    # (trainable, frozen) -> full params for sampling
  budget: Callable          # (states, prompt_index_p) -> budget_p [P] int32
  tx: Any
  state_sh: TrainState
  frozen_sh: Any
  batch_sh: Any             # the update batch's rows over the batch axes


# Compiled updates, keyed by `_update_key`: tests and notebooks call `run` many times, and
# the update's compile dominates.
_UPDATES: dict[tuple, tuple] = {}


def _update_key(spec: step.UpdateSpec, model_cfg, trainable_axes, frozen: dict, mesh,
                rules: tuple, teacher_model: str) -> tuple:
  """What the compiled update depends on: its spec (every option it reads), the model, the
  trainable tree's axes, the frozen trees it takes, the mesh and the sharding rules. The
  teacher's name decides its model config (a separate input of the build)."""
  return (spec, model_cfg, repr(trainable_axes), tuple(sorted(frozen)), mesh, rules,
          teacher_model if spec.teacher else "")


def _build_update(config, model_cfg, trainable, frozen, trainable_axes, mesh) -> tuple:
  """(jitted update, tx, state shardings, frozen shardings), memoised per `_update_key`."""
  spec = step.UpdateSpec.from_config(config)
  rules = tuple(config.mesh.rules)
  key = _update_key(spec, model_cfg, trainable_axes, frozen, mesh, rules, config.teacher.model)
  if key not in _UPDATES:
    tx, schedule = spec.optimizer()
    abstract = jax.eval_shape(lambda p: init_train_state(
        p, tx), trainable)
    state_sh = state_shardings(abstract, tx, trainable_axes, mesh, rules)
    teacher_cfg = (load_teacher(config, model_cfg, {})[0] if spec.teacher else None)
    frozen_axes = {k: models.param_axes(teacher_cfg if k == "teacher" else model_cfg)
                   for k in frozen}
    frozen_sh = {k: sharding.tree_shardings(mesh, frozen_axes[k], rules, frozen[k])
                 for k in frozen}
    update = step.make_update_step(spec, model_cfg, tx, schedule, teacher_cfg=teacher_cfg,
                                   layout=sharding.Layout.of(mesh, rules))
    _UPDATES[key] = (step.jit_update_step(update, state_sh, frozen_sh, mesh, rules), tx,
                     state_sh, frozen_sh)
  return _UPDATES[key]


def build_functions(config, model_cfg, trainable, frozen, trainable_axes, mesh) -> Functions:
  """jit the update (explicit shardings, donated state) and the small host-facing pieces."""
  update, tx, state_sh, frozen_sh = _build_update(config, model_cfg, trainable, frozen,
                                                  trainable_axes, mesh)
  group_size = config.rollout.group_size
  filter_fn = functools.partial(filters.GROUP_FILTERS.get(config.filter.name),
                                group_size=group_size, **config.filter[config.filter.name])
  # The reward then the per-prompt budget update, each on its own state, and the budgets.
  score, budget_fn = components.make_score(config), components.make_budget(config)
  return Functions(update=update, score=jax.jit(score), keep=jax.jit(filter_fn),
                   model_params=_rollout_params_fn(config, model_cfg, mesh, frozen, trainable),
                   budget=jax.jit(budget_fn), tx=tx, state_sh=state_sh, frozen_sh=frozen_sh,
                   batch_sh=sharding.batch_sharding(mesh, tuple(config.mesh.rules)))


def _rollout_params_fn(config, model_cfg, mesh, frozen, trainable) -> Callable:
  """jit of (trainable, frozen) -> the full params the sampler decodes with, laid out by the
  training rules, or with fsdp splits gathered (`rollout.reshard_params`: one all-gather per
  rollout instead of collectives at every decoded token)."""
  rules = tuple(config.mesh.rules)
  if config.rollout.reshard_params:
    rules = sharding.rollout_rules(rules)
  policy = step.policy_from_config(config)
  shapes = jax.eval_shape(policy.model_params, trainable, frozen)
  out_sh = sharding.tree_shardings(mesh, models.param_axes(model_cfg), rules, shapes)
  return jax.jit(policy.model_params, out_shardings=out_sh)


@dataclasses.dataclass
class Trainer:
  """One training run, set up: the model, the mesh, the jitted functions, the data and the
  state. `loop.train_step(trainer, trainer.state, i)` advances it; `loop.run` drives it with
  checkpoints and metrics. Everything but `state` stays fixed during a run."""
  config: Any
  model_cfg: models.ModelConfig
  tokenizer: Any
  fns: Functions
  frozen: dict
  iterator: Any
  index_of: dict[str, int]          # Example.id → row of the reward-state tables
  eval_examples: list
  check: rollout_step.CheckFn
  sample_rng: jax.Array             # fold_in(key(seed), 2): per-step keys fold in the step
  features: Any = None              # host_features.HostFeatures, or None (reward needs none)
  monitor_examples: list = dataclasses.field(default_factory=list)  # LASER-D/DE monitor set
  layout: sharding.Layout | None = None   # the training mesh, on which rollouts decode too
  state: TrainState | None = None   # step-0 state from `make_trainer`; the caller advances it
  trainable_axes: Any = None        # logical axes of the trainable tree
  draft_spec: Any = None            # draft.online.OnlineSpec: speculative rollouts; None = off
  distill: Callable | None = None   # (draft state, params, rollout, key) -> (draft state, metrics)
  close: Callable[[], None] = lambda: None   # stops the verifier pool

  def __enter__(self) -> "Trainer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def initial_state(config, fns: Functions, trainable, num_prompts: int) -> TrainState:
  """Step-0 state on the mesh, in buffers of its own (the trainable tree is copied): the state
  is donated to the update, and the caller's params (e.g. a KL reference) must survive it."""
  state = init_train_state(trainable, fns.tx,
                           reward_state=components.init_states(config, num_prompts))
  return distributed.put(state, with_state_leaves(fns.state_sh, state))


def place_frozen(fns: Functions, frozen: dict, state: TrainState) -> dict:
  """The frozen trees (LoRA base, KL reference, teacher) on the mesh, as real copies.

  The KL reference starts as the very arrays that are trained; `device_put` may reuse a
  buffer for a replicated leaf, and the update would then donate what it also reads.
  """
  frozen = distributed.put(frozen, fns.frozen_sh)
  shared = distributed.shared_buffers(state, frozen)
  if shared:
    raise RuntimeError(f"train state shares buffers with frozen params: {shared[:5]}")
  return frozen


def _make_checker(config):
  """(check fn, closer): a process pool with time limits, or in-process checking."""
  if config.verify.num_workers <= 0:
    return rollout_step.check_in_process, lambda: None
  verifier = Verifier(num_workers=config.verify.num_workers, timeout_s=config.verify.timeout_s)
  return verifier.verify, verifier.close


def make_trainer(config) -> Trainer:
  """Sets a run up from its config: model, trainable/frozen split, mesh, jitted functions,
  data iterator, step-0 state on the mesh, verifier. What `loop.run`, the tests, the
  benchmarks and the cost tools all build a run with; close it (or use `with`) to stop the
  verifier pool."""
  config = options.resolve(config)
  model_cfg, params, tokenizer = load_model(config)
  trainable, frozen, axes = split_trainable(config, model_cfg, params)
  mesh = sharding.make_mesh(config.mesh.shape, dcn_shape=config.mesh.dcn_shape)
  # train.memory_budget_gb > 0: model.remat is the cheapest policy whose update fits.
  config, model_cfg = memory_budget.apply(config, model_cfg, trainable, frozen, axes, mesh)
  fns = build_functions(config, model_cfg, trainable, frozen, axes, mesh)
  examples, eval_examples = load_prompts(config)
  iterator = data.make_prompt_iterator(examples, config.rollout.prompts_per_step,
                                       seed=config.seed)
  state = initial_state(config, fns, trainable, len(examples))
  draft_spec, distill = None, None
  if (draft_spec := online_draft.from_config(config)) is not None:
    state, distill = _place_draft(config, draft_spec, model_cfg, params, mesh, state)
  frozen = place_frozen(fns, frozen, state)
  check, close_checker = _make_checker(config)
  return Trainer(config=config, model_cfg=model_cfg, tokenizer=tokenizer, fns=fns,
                 frozen=frozen, iterator=iterator,
                 index_of={ex.id: i for i, ex in enumerate(examples)},
                 eval_examples=eval_examples, check=check,
                 sample_rng=jax.random.fold_in(jax.random.PRNGKey(config.seed), 2),
                 features=host_features.make_host_features(config, tokenizer, check),
                 monitor_examples=examples, layout=sharding.Layout.of(mesh, config.mesh.rules),
                 state=state, trainable_axes=axes, draft_spec=draft_spec, distill=distill,
                 close=close_checker)


def _place_draft(config, draft_spec, model_cfg, params: dict, mesh, state: TrainState):
  """(state with the step-0 draft head, replicated on the mesh; the jitted distillation step).

  The head starts over the initial policy (`params`), keyed by fold_in(key(seed), 4).
  """
  if host_features.needs_entropy(config):
    raise ValueError("rollout.speculative: the speculative sampler returns no token entropies, "
                     "which a selected component needs")
  if rollout_step.steering_from_config(config) is not None:
    raise ValueError("rollout.speculative does not combine with rollout.steering")
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 4)
  draft = online_draft.init_draft(draft_spec, model_cfg, params, key)
  draft = distributed.put(draft, sharding.replicated(mesh))
  return state.replace(draft=draft), online_draft.make_distill(model_cfg, draft_spec, mesh)
