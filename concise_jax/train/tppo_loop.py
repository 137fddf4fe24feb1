"""The T-PPO training loop (arXiv:2506.15050): windowed rollouts, a critic, EGAE, PPO updates.

    result = run_tppo(config, workdir)     # `config.trainer == "tppo"` in concise_jax.main

One iteration (one `step`):

  1. the slot scheduler (`train.tppo_rollouts`) admits prompts into free groups of G slots and
     advances every live slot by `tppo.window` tokens under the current policy;
  2. each group whose G rows all ended is checked once by the verifier and its slots are
     freed; the window's completed groups are then scored together by the configured registry
     reward (`reward.name`, the GRPO trainer's `components.make_score`, `score_completed`).
     Stateful rewards (per-prompt memory), rewards that need host features and per-prompt
     budgets are refused at set-up: the slot scheduler carries no component state;
  3. the update batch is every slot row, masked to the rows it may use: the completed groups'
     rows (outcome reward) and, with `tppo.train_on_unfinished`, the alive rows (unfinished:
     cut at this window's end; bootstrapped by the critic through Extended GAE). Rows that
     ended but wait for the rest of their group are not trained until the group is scored;
  4. one `tppo_update` step: critic values, then the critic estimator `tppo.advantage.name`
     (registry `advantages.base.CRITIC_ADVANTAGES`: "egae" — λ_policy, optionally VAPO's
     length-adaptive rule, value targets with λ_critic = 1 — or "gae") gives advantages and
     value targets; PPO clip + clipped value loss, separate optimizers. An iteration whose
     batch has no row skips the update.

Held-out evaluation (`eval.every` > 0) is the GRPO trainer's: at step 0 (saved to
eval_step0.json, read back on a resume), every `eval.every` iterations and at the last, by
`concise_jax.eval`'s runner with `loop.eval_settings`, logged under the same `eval/...` names,
so accuracy and length after equal wall-clock compare between trainer=grpo and trainer=tppo.

With `train_on_unfinished`, an alive row's prefix is trained at every window until it ends
(with the critic's current bootstrap each time) and then once more, whole, on its outcome:
early tokens of long responses are revisited, like extra PPO epochs on them. A labelled choice
(T-PPO does not publish which tokens each step trains on).

The batch has a static shape [slots, T] (slots = `rollout.prompts_per_step` groups ×
`rollout.group_size`), so the update compiles once. The whole state — policy, critic, both
optimizer states, the scheduler's Buffer (slot table, KV cache, stream position) — is one
pytree saved by `train.checkpoint`, so a run stopped and resumed equals an uninterrupted one.
The prompt stream is the training examples in a fresh seeded permutation per epoch, indexed by
the Buffer's stream position. Sampling keys: fold_in(fold_in(key(seed), 2), step).
"""
import dataclasses
import json
import os
import time

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from concise_jax import components, distributed, options, rewards, sharding, types
from concise_jax.advantages import base as advantage_base, gae
from concise_jax.eval import runner as eval_runner
from concise_jax.rollout import mesh_sampling, windowed
from concise_jax.train import checkpoint, loop, metrics as metrics_lib, rollout_step, run_files
from concise_jax.train import trainer, workdir_lock
from concise_jax.train import tppo_rollouts, tppo_update


@flax.struct.dataclass
class TppoState:
  """Everything a resumed run needs (the data position is `buffer.stream_pos`)."""
  step: jax.Array                   # [] int32 iterations done
  params: dict
  critic: dict
  policy_opt: optax.OptState
  critic_opt: optax.OptState
  buffer: tppo_rollouts.Buffer


@dataclasses.dataclass
class TppoResult:
  """What `run_tppo` returns (the fields `concise_jax.main` reads, as `loop.RunResult`)."""
  step: int
  state: TppoState
  metrics: dict
  halted: bool = False
  preempted: str = ""
  eval_before: dict = dataclasses.field(default_factory=dict)
  eval_after: dict = dataclasses.field(default_factory=dict)


# Ranges of the critic estimators' options (`tppo.advantage.<name>.<key>`): (low, high).
_ADVANTAGE_RANGES = {"gamma": (0.0, 1.0), "lam_policy": (0.0, 1.0), "lam_critic": (0.0, 1.0),
                     "lam": (0.0, 1.0), "alpha": (0.0, None), "drop_last_n": (0, None)}


def check_options(tc) -> None:
  """ValueError naming the first out-of-range `tppo.*` option."""
  problems = []
  if tc.window < 1:
    problems.append(f"tppo.window={tc.window}: at least 1 token per window")
  if tc.critic not in tppo_update.CRITIC_MODES:
    problems.append(f"tppo.critic={tc.critic!r}; choose from {tppo_update.CRITIC_MODES}")
  if tc.refresh not in tppo_rollouts.REFRESH_CHOICES:
    problems.append(f"tppo.refresh={tc.refresh!r}; choose from "
                    f"{tppo_rollouts.REFRESH_CHOICES}")
  name = tc.advantage.name
  error = advantage_base.trainer_error(name, "tppo")
  if error:
    problems.append(f"tppo.advantage.name: {error}")
  else:
    for key, value in tc.advantage.get(name, {}).items():
      lo, hi = _ADVANTAGE_RANGES.get(key, (None, None))
      if (lo is not None and value < lo) or (hi is not None and value > hi):
        problems.append(f"tppo.advantage.{name}.{key}={value}: must lie in [{lo}, {hi or 'inf'}]")
    rule = tc.advantage.get(name, {}).get("lambda_length")
    if rule is not None and rule not in gae.LAMBDA_LENGTH_RULES:
      problems.append(f"tppo.advantage.{name}.lambda_length={rule!r}; choose from "
                      f"{gae.LAMBDA_LENGTH_RULES}")
  for key in ("value_clip", "critic_lr", "value_coef"):
    if tc[key] < 0:
      problems.append(f"tppo.{key}={tc[key]}: must be >= 0")
  if problems:
    raise ValueError("; ".join(problems))


def check_reward(config) -> None:
  """ValueError unless `config.reward` can score T-PPO's completed groups: a stateless reward
  reading no host features, and no per-prompt budget (the slot scheduler has no component
  state; wiring it into the Buffer is future work)."""
  component = rewards.REWARDS.component(config.reward.name)   # unknown: lists the valid ones
  if component.stateful:
    raise ValueError(f"trainer=tppo: reward {component.name!r} keeps per-prompt state (init=), "
                     "which the slot scheduler does not carry; choose a stateless reward: "
                     + ", ".join(_stateless_rewards()))
  if component.needs:
    raise ValueError(f"trainer=tppo: reward {component.name!r} needs host features "
                     f"{component.needs}, which the slot scheduler does not compute; choose "
                     "from: " + ", ".join(_stateless_rewards()))
  if config.budget.name != "none":
    raise ValueError(f"trainer=tppo: budget.name={config.budget.name!r} is not applied by the "
                     "slot scheduler; use budget.name='none'")


def _stateless_rewards() -> list[str]:
  return [n for n in rewards.REWARDS.names()
          if not rewards.REWARDS.component(n).stateful and not rewards.REWARDS.component(n).needs]


def prompt_stream(num_examples: int, seed: int):
  """Stream position -> example index: epoch e is permutation(default_rng((seed, e)))."""
  cache = {}

  def index(pos: int) -> int:
    epoch, offset = divmod(pos, num_examples)
    if epoch not in cache:
      cache.clear()
      cache[epoch] = np.random.default_rng((seed, epoch)).permutation(num_examples)
    return int(cache[epoch][offset])

  return index


def _optimizer(lr: float, config) -> optax.GradientTransformation:
  o = config.optim
  adam = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
  return optax.chain(optax.clip_by_global_norm(o.clip_norm), adam) if o.clip_norm > 0 else adam


# Compiled updates per (model, every option the update reads): tests and benchmarks set many
# runs up in one process, and the update's compile dominates their start-up.
_UPDATES: dict[tuple, tuple] = {}


def _build_update(config, model_cfg) -> tuple:
  """(policy optimizer, critic optimizer, jitted update), memoised."""
  tc, o = config.tppo, config.optim
  adv_name = tc.advantage.name
  adv_options = dict(tc.advantage.get(adv_name, {}))
  key = (model_cfg, o.lr, tc.critic_lr, o.b1, o.b2, o.eps, o.weight_decay, o.clip_norm,
         adv_name, tuple(sorted(adv_options.items())),
         config.loss.ppo_clip.eps_high, tc.value_clip, tc.value_coef, config.rollout.temperature)
  if key not in _UPDATES:
    policy_opt, critic_opt = _optimizer(o.lr, config), _optimizer(tc.critic_lr, config)
    update = tppo_update.make_update(
        model_cfg, policy_opt, critic_opt, advantage=adv_name, advantage_options=adv_options,
        eps=config.loss.ppo_clip.eps_high, value_clip=tc.value_clip, value_coef=tc.value_coef,
        temperature=config.rollout.temperature)
    _UPDATES[key] = (policy_opt, critic_opt, update)
  return _UPDATES[key]


@dataclasses.dataclass
class Setup:
  """A T-PPO run, set up (what `run_tppo`, the tests and the benchmark build)."""
  config: object
  model_cfg: object
  tokenizer: object
  scheduler: tppo_rollouts.SlotScheduler
  update: object                # jitted tppo_update.make_update
  state: TppoState              # step 0
  sample_rng: jax.Array
  close: object
  score: object = None          # jitted components.make_score: (states, Rollout) -> reward
  example_index: object = None  # stream position -> training example index
  eval_examples: list = dataclasses.field(default_factory=list)
  check: object = None          # the answer checker (rollouts and evaluation)
  layout: object = None         # the mesh (evaluation decodes on it); None on one device


def make_setup(config, *, check: rollout_step.CheckFn | None = None) -> Setup:
  """Model, prompts, verifier, scheduler, jitted update and the step-0 state.

  `check` replaces the run's answer checker (tests use it to give the tiny model rewards).
  """
  config = options.resolve(config)
  tc = config.tppo
  check_options(tc)
  check_reward(config)
  model_cfg, params, tokenizer = trainer.load_model(config)
  examples, eval_examples = trainer.load_prompts(config)
  close = lambda: None
  if check is None:
    check, close = trainer._make_checker(config)  # pylint: disable=protected-access
  fmt = rollout_step.prompt_format(config)
  ids = mesh_sampling.prompt_ids(tokenizer, examples, fmt)
  prompt_len = mesh_sampling.padded_length(ids, fmt)
  ids = [list(x)[-prompt_len:] for x in ids]
  order = prompt_stream(len(examples), config.seed)
  sp = rollout_step.sampling_params(config, tokenizer)
  g = config.rollout.group_size

  def source(pos: int):
    return tppo_rollouts.Prompt(ids[order(pos)])

  def score(pos: int, out) -> np.ndarray:
    """The group's verifier results (0/1); `score_completed` turns them into the reward."""
    ex = examples[order(pos)]
    texts = [tokenizer.decode(out.tokens_bt[i, :int(out.length_b[i])]) for i in range(g)]
    kind = ex.meta.get("verify_kind", "numeric")
    return np.asarray(check(texts, [ex.answer] * g, [kind] * g), np.float32)

  mesh = sharding.make_mesh(config.mesh.shape, dcn_shape=config.mesh.dcn_shape)
  layout = sharding.Layout.of(mesh, config.mesh.rules)
  scheduler = tppo_rollouts.SlotScheduler(
      model_cfg, sp, num_groups=config.rollout.prompts_per_step, group_size=g,
      prompt_len=prompt_len, window=tc.window, source=source, score=score,
      refresh=tc.refresh, layout=layout if mesh.size > 1 else None)
  policy_opt, critic_opt, update = _build_update(config, model_cfg)
  critic = tppo_update.init_critic(model_cfg, params, tc.critic)
  state = TppoState(step=jnp.zeros((), jnp.int32), params=params, critic=critic,
                    policy_opt=policy_opt.init(params), critic_opt=critic_opt.init(critic),
                    buffer=scheduler.init())
  # Params and optimizer states replicated; the scheduler pins decode rows over the batch axes.
  state = distributed.put(state, sharding.replicated(mesh))
  return Setup(config=config, model_cfg=model_cfg, tokenizer=tokenizer, scheduler=scheduler,
               update=update, state=state,
               sample_rng=jax.random.fold_in(jax.random.PRNGKey(config.seed), 2), close=close,
               score=jax.jit(components.make_score(config)), example_index=order,
               eval_examples=eval_examples, check=check,
               layout=layout if mesh.size > 1 else None)


# --------------------------------------------------------------------------- rewards


def completed_rollout(completed: list, tokenizer, example_index) -> types.Rollout:
  """The completed groups' rows as the `types.Rollout` the registry rewards score (numpy,
  B = groups · G, T = the decode cap): `correct_b` is the verifier's result (the scheduler's
  per-group score), `format_ok_b` the answer-marker check, as in the GRPO trainer's rollouts."""
  cat = lambda name: np.concatenate([np.asarray(getattr(c.out, name)) for c in completed])
  tokens, length = cat("tokens_bt"), cat("length_b")
  texts = [tokenizer.decode(row[:n]) for row, n in zip(tokens, length)]
  g = len(completed[0].rewards_g)
  return types.Rollout(
      tokens_bt=tokens.astype(np.int32), mask_bt=cat("mask_bt").astype(np.float32),
      length_b=length.astype(np.int32),
      correct_b=np.concatenate([np.asarray(c.rewards_g) > 0.5 for c in completed]),
      format_ok_b=np.asarray([rollout_step.has_answer_marker(t) for t in texts], bool),
      truncated_b=cat("truncated_b").astype(bool),
      prompt_index_b=np.repeat([example_index(c.prompt_id) for c in completed], g).astype(
          np.int32),
      old_logp_bt=cat("logp_bt").astype(np.float32))


def score_completed(score, completed: list, tokenizer,
                    example_index) -> tuple[np.ndarray, np.ndarray, dict]:
  """(rewards [n·G], correct [n·G] bool, reward metrics) of this window's n completed groups.

  One call of the GRPO trainer's reward function (`components.make_score`, jitted) on exactly
  those rows: batch statistics (GRPO-λ's top fraction of groups, arXiv:2505.18086) are taken
  over the groups completed in the same window, never over padding. A labelled choice: the
  batch is smaller than the GRPO trainer's P groups; one program compiles per count of
  completed groups (at most `rollout.prompts_per_step`, each a small element-wise one).
  Only the sequence reward is used: a reward that cuts tokens, gives token rewards or an
  advantage bonus is refused (EGAE takes the outcome reward on the last token).
  """
  batch = completed_rollout(completed, tokenizer, example_index)   # whole groups, G rows each
  states = components.ComponentStates(step=jnp.zeros((), jnp.int32), reward=(), budget=())
  out, _, metrics = jax.device_get(score(states, batch))
  if out.token_rewards_bt is not None or out.adv_bonus_bt is not None or not np.all(
      np.asarray(out.loss_mask_bt) == 1):
    raise ValueError("trainer=tppo uses the reward's sequence rewards only; this reward cuts "
                     "tokens, gives token rewards or an advantage bonus, which EGAE ignores")
  return (np.asarray(out.rewards_b, np.float32), np.asarray(batch.correct_b),
          {f"reward/{k}": float(v) for k, v in metrics.items()})


# --------------------------------------------------------------------------- evaluation


def evaluate(setup: Setup, params) -> dict[str, float]:
  """Held-out accuracy and lengths of `params`, by the GRPO trainer's evaluation (`loop`'s
  settings, `concise_jax.eval`'s runner, the same metric names: `eval/greedy/accuracy`,
  `eval/rollout/accuracy`, `eval/len/all/mean`, ...), so the two trainers' runs compare."""
  policy = eval_runner.Policy("training", setup.model_cfg, params, setup.tokenizer,
                              layout=setup.layout)
  records, _ = eval_runner.evaluate_dataset(
      policy, setup.eval_examples, loop.eval_settings(setup.config),
      eval_runner.InlineVerifier(setup.check), label="eval", progress=False)
  return loop.eval_metrics(records)


@jax.jit
def _batch(decode: windowed.WindowState, row_mask_b: jax.Array, rewards_b: jax.Array,
           alive_b: jax.Array) -> tppo_update.TppoBatch:
  """Every slot row as an update row, its token mask zero unless the row trains now."""
  t = decode.logp_bt.shape[1]
  pad = decode.tokens_bt.shape[1] - t
  mask_bt = (jnp.arange(t)[None, :] < decode.length_b[:, None]) & row_mask_b[:, None]
  return tppo_update.TppoBatch(
      prompt_bs=decode.prompt_bs, prompt_mask_bs=decode.prompt_mask_bs,
      tokens_bt=jnp.where(mask_bt, decode.tokens_bt[:, pad:], 0),
      mask_bt=mask_bt.astype(jnp.float32), old_logp_bt=decode.logp_bt * mask_bt,
      rewards_b=rewards_b, alive_b=alive_b)


def iteration(setup: Setup, state: TppoState) -> tuple[TppoState, dict]:
  """One window, scoring of completed groups, one update: (new state, float metrics)."""
  sched, tc = setup.scheduler, setup.config.tppo
  step = int(state.step)
  t0 = time.perf_counter()
  buffer, completed = sched.step(state.params, state.buffer,
                                 jax.random.fold_in(setup.sample_rng, step), updated=step > 0)
  rollout_s = time.perf_counter() - t0
  rows, g = sched.num_groups * sched.group_size, sched.group_size
  row_mask = np.zeros((rows,), bool)
  rewards = np.zeros((rows,), np.float32)
  lengths, correct, reward_metrics = [], np.zeros((0,), bool), {}
  if completed:
    reward_n, correct, reward_metrics = score_completed(setup.score, completed, setup.tokenizer,
                                                        setup.example_index)
  for j, c in enumerate(completed):
    sl = slice(c.group_index * g, (c.group_index + 1) * g)
    row_mask[sl], rewards[sl] = True, reward_n[j * g:(j + 1) * g]
    lengths.extend(np.asarray(c.out.length_b).tolist())
  alive = ~np.asarray(buffer.decode.done_b) & (np.asarray(buffer.decode.length_b) > 0)
  if tc.train_on_unfinished:
    row_mask |= alive
  alive &= row_mask
  tokens, row_steps = sched.last_window
  m = {"rollout/accuracy": float(np.mean(correct)) if completed else float("nan"),
       "reward/mean": float(np.mean(reward_n)) if completed else float("nan"),
       **reward_metrics,
       "rollout/completed_groups": float(len(completed)),
       "len/mean": float(np.mean(lengths)) if lengths else float("nan"),
       "tppo/utilisation": tokens / max(row_steps, 1), "tppo/alive_rows": float(alive.sum()),
       "tppo/trained_rows": float(row_mask.sum()), "perf/rollout_s": rollout_s}
  params, critic, popt, copt = state.params, state.critic, state.policy_opt, state.critic_opt
  if row_mask.any():
    t1 = time.perf_counter()
    batch = _batch(buffer.decode, jnp.asarray(row_mask), jnp.asarray(rewards),
                   jnp.asarray(alive))
    params, critic, popt, copt, um = setup.update(params, critic, popt, copt, batch)
    m.update(metrics_lib.to_floats(um))
    m["perf/update_s"] = time.perf_counter() - t1
  m["tppo/updated"] = float(row_mask.any())
  return TppoState(step=state.step + 1, params=params, critic=critic, policy_opt=popt,
                   critic_opt=copt, buffer=buffer), m


def run_tppo(config, workdir: str, *, check: rollout_step.CheckFn | None = None,
             stop_after: int | None = None) -> TppoResult:
  """Trains `config.train.steps` iterations in `workdir`, resuming from its newest checkpoint.

  Holds the workdir lock, writes `config.json` and `metrics.jsonl` (one row per iteration; rows
  past a restored step are trimmed) and checkpoints every `train.ckpt_every` iterations and at
  the end. `stop_after`: return after that many iterations of this call (tests: a stop and
  resume), saving a checkpoint first.
  """
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock.hold(workdir):
    return _run(config, workdir, check, stop_after)


def _run(config, workdir, check, stop_after) -> TppoResult:
  setup = make_setup(config, check=check)
  config = setup.config
  config_dict = json.loads(config.to_json())
  manager = checkpoint.make_manager(workdir, keep=config.train.keep_ckpts,
                                    keep_every=config.train.keep_every)
  try:
    restored = checkpoint.restore(manager, setup.state, on_damaged=config.train.on_bad_ckpt,
                                  config=config_dict)
  except BaseException:
    manager.close()
    setup.close()
    raise
  state = setup.state if restored is None else restored[0]
  start = int(state.step)
  run_files.trim_metrics(workdir, start)
  run_files.write_config(workdir, config)
  writer = metrics_lib.MetricsWriter(workdir, total_steps=config.train.steps,
                                     initial_step=start, log_every=config.train.log_every)
  if restored is not None:
    writer.message(f"resumed from step {start}")
  m, done, halted, eval_after = {}, 0, False, {}
  evaluating = config.eval.every > 0 and bool(setup.eval_examples)
  try:
    eval_before = (loop.step0_eval(workdir, int(state.step),
                                   lambda: evaluate(setup, state.params), writer)
                   if evaluating else {})
    while int(state.step) < config.train.steps:
      new_state, m = iteration(setup, state)
      if not all(np.isfinite(m.get(k, 0.0)) for k in ("loss/policy", "loss/value")):
        # Nothing of this iteration is kept or saved: the newest checkpoint stays the last good.
        writer.message(f"HALT: non-finite T-PPO loss at iteration {int(new_state.step)}; "
                       "the last checkpoint is the last good state")
        halted = True
        break
      state = new_state
      step, done = int(state.step), done + 1
      if evaluating and (step % config.eval.every == 0 or step == config.train.steps):
        eval_after = evaluate(setup, state.params)
        m.update(eval_after)
      writer.write(step, m)
      last = step == config.train.steps or (stop_after is not None and done >= stop_after)
      if step % config.train.ckpt_every == 0 or last:
        checkpoint.save(manager, state, {"config": config_dict})
      if stop_after is not None and done >= stop_after:
        break
  finally:
    manager.close()
    writer.close()
    setup.close()
  return TppoResult(step=int(state.step), state=state, metrics=m, halted=halted,
                    eval_before=eval_before, eval_after=eval_after)
