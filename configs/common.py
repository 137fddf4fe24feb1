"""`base_config()`: the one config every experiment file starts from, and the shared args.

The registry-backed sections (reward, advantage, filter, loss, aggregation, kl, budget) are
built from the registered components' signatures (`concise_jax.options`): an option's default
is written once, next to the code that reads it. Static shapes (`group_size`) are not
options; the call site binds them from the rollout config.

Imports no model, sampler, data pipeline or checkpointing code: a config loads in the time
the component packages take to import.
"""
import ml_collections

from concise_jax import options, sharding


# {variant: {option: default}} per section, derived from the signatures (not a second
# definition): for tests and scripts that bind a variant's defaults by hand.
REWARD_DEFAULTS = options.defaults("reward")
ADVANTAGE_DEFAULTS = options.defaults("advantage")
FILTER_DEFAULTS = options.defaults("filter")
POLICY_LOSS_DEFAULTS = options.defaults("loss")
AGGREGATION_DEFAULTS = options.defaults("aggregation")
KL_DEFAULTS = options.defaults("kl")
BUDGET_DEFAULTS = options.defaults("budget")


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """"model=tiny,runlocal" → {model: "tiny", runlocal: True}; bare words are True flags.

  Keys must appear in `defaults` (a typo in the config arg fails like a typo in an override).
  """
  out = dict(defaults)
  for item in filter(None, (s.strip() for s in (arg or "").split(","))):
    key, sep, value = item.partition("=")
    if key not in defaults:
      raise KeyError(f"unknown config arg {key!r}; valid choices: {', '.join(sorted(defaults))}")
    out[key] = value if sep else True
  return ml_collections.ConfigDict(out)


def base_config() -> ml_collections.ConfigDict:
  """Every knob of a run with its default: SmolLM2-135M, single-digit addition, plain GRPO."""
  c = ml_collections.ConfigDict()
  c.seed = 0                          # init (fold_in 0), data order, sampling (fold_in 2)

  c.model = ml_collections.ConfigDict()
  c.model.name = "smollm2-135m-instruct"  # known name, "tiny" (test model) or checkpoint path
  c.model.remat = "dots"              # per-layer remat: "none" | "dots" (keep matmul outputs,
                                      #   recompute the rest) | "full" (a second forward);
                                      #   experiments/bench_remat.py measures time and memory
  c.model.dtype = "float32"           # compute dtype: "bfloat16" on TPU/GPU (slow on XLA:CPU)
  c.model.param_dtype = "float32"     # master weights (and so optimizer moments); keep float32
  c.model.lora = ml_collections.ConfigDict()
  c.model.lora.rank = 0               # 0 = full fine-tuning; > 0 trains rank-r adapters only
  c.model.lora.alpha = 32.0           # adapter scale alpha / rank
  c.model.lora.targets = "w_q,w_k,w_v,w_o,w_gate,w_up,w_down"  # adapted weights (comma list)

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "task:add_1digit"  # data.load_dataset spec: task:<name> or <format>:<path>
  c.data.num_prompts = 1000           # generated items (tasks only); sizes the reward tables
  c.data.eval_dataset = ""            # "" = the test split of a task dataset (files: none)
  c.data.instruction = "brief"        # data.add_instruction key or literal text
  c.data.system_prompt = ""           # "" = the chat template's default system message
  c.data.bad_rows = "error"           # file rows with a bad field: "error", or "drop" (counted)
  c.data.data_dir = ""                # tfds-prepared copies of data files; "" =
                                      #   $CONCISE_JAX_DATA_DIR or ~/.cache/concise_jax/tfds

  c.rollout = ml_collections.ConfigDict()
  c.rollout.prompts_per_step = 8      # P: prompt groups in one update
  c.rollout.group_size = 8            # G: samples per prompt
  c.rollout.max_new_tokens = 128      # T: decode budget (L_max)
  c.rollout.max_prompt_tokens = 64    # S: prompts are left-padded to this (static shapes)
  c.rollout.temperature = 0.7         # SmolLM2-135M degenerates at 1.0 (measured)
  c.rollout.top_p = 1.0               # 1.0 = off
  c.rollout.top_k = 0                 # 0 = off
  c.rollout.max_refill_batches = 4    # dynamic sampling: rollout batches tried per update
  c.rollout.reshard_params = False    # True: gather fsdp-split weights once per rollout, so the
                                      #   decode runs without per-token fsdp collectives
  # ASC activation steering of the rollouts (arXiv 2507.04742). Steered samples are off-policy
  # for the unsteered training forward: the update then keeps the sampler's log-probs as the
  # old log-probs (ratio pi_theta / pi_steered, clipped), never its own.
  c.rollout.steering = ml_collections.ConfigDict()
  c.rollout.steering.path = ""        # concise_jax.steering.save file; "" = no steering
  c.rollout.steering.strength = 1.0   # gamma on the raw (unnormalised) vector
  c.rollout.steering.rule = "last"    # steered positions: "last" (ASC) or "all"
  # Lossless speculative rollouts with an EAGLE head (arXiv 2401.15077) distilled online from
  # the policy after each update (SpecVLM, arXiv 2509.11815); the head lives in the checkpoint.
  c.rollout.speculative = ml_collections.ConfigDict()
  c.rollout.speculative.enabled = False
  c.rollout.speculative.draft = "eagle"        # the draft kind (only the EAGLE head for now)
  c.rollout.speculative.num_draft = 4          # k: drafted tokens per target forward
  c.rollout.speculative.distill = True         # False: keep the head fixed (e.g. init_from's)
  c.rollout.speculative.lr = 1e-3              # the head's AdamW learning rate
  c.rollout.speculative.feature_weight = 1.0   # Smooth-L1 on features: EAGLE's weights;
  c.rollout.speculative.ce_weight = 0.1        #   SpecVLM does not publish its own
  c.rollout.speculative.draft_vocab = 0        # reduced draft vocabulary (EAGLE-3); 0 = full
  c.rollout.speculative.init_from = ""         # a `python -m concise_jax.draft` dir or a
                                               #   training workdir; "" = a fresh head

  c.verify = ml_collections.ConfigDict()
  c.verify.num_workers = 2            # answer-checking processes; 0 = check in this process
  c.verify.timeout_s = 2.0            # hard per-answer time limit (pool only)

  # One sub-dict per registered variant, from its signature; `options.resolve` keeps the
  # selected one once the flags are parsed.
  for section in options.SECTIONS:
    c[section] = options.section_config(section)
  c.reward.name = "correctness"       # rewards.REWARDS
  c.advantage.name = "grpo"           # advantages.ADVANTAGES
  c.filter.name = "none"              # filters.GROUP_FILTERS ("nonzero_variance" = DAPO)
  c.loss.name = "ppo_clip"            # losses.POLICY_LOSSES
  c.loss.entropy_coef = 0.0           # entropy bonus weight
  c.loss.mask_truncated = False       # DAPO overlong filtering: truncated samples get no loss
  c.aggregation.name = "token_mean"   # losses.AGGREGATIONS
  c.kl.name = "k3"                    # losses.KL_ESTIMATORS
  c.kl.coef = 0.0                     # beta; 0 skips the reference forward entirely
  c.budget.name = "none"              # budgets.BUDGET_SCHEDULES: per-prompt decode budgets
  c.budget.prompt_template = ""       # e.g. "Think for {n} tokens.": state the budget instead (L1)

  c.teacher = ml_collections.ConfigDict()
  c.teacher.model = ""                # "" = none; "init" = initial policy; else a model name or
                                      #   path with the student's tokenizer (KDRL, DPH-RL)

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-6                   # peak learning rate (verl / DeepSeekMath)
  c.optim.schedule = "constant"       # train.optim.SCHEDULES
  c.optim.warmup_steps = 0            # optimizer steps of linear warm-up
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.01         # AdamW decoupled decay (verl default)
  c.optim.clip_norm = 1.0             # global-norm gradient clip; <= 0 disables
  c.optim.num_minibatches = 1         # optimizer steps per PPO epoch
  c.optim.micro_batch = 8             # rows per gradient-accumulation micro-batch (0 = all)
  c.optim.length_buckets = 0          # K > 1: rows sorted by length, each micro-batch cut to
                                      #   the first of T·k/K (k = 1..K) holding it; 0/1 = off

  c.train = ml_collections.ConfigDict()
  c.train.steps = 200                 # updates (rollout + update) in the run
  c.train.ppo_epochs = 1              # passes over each rollout batch
  c.train.recompute_old_logp = True   # old log-probs from the training forward, not the sampler
  c.train.logp_chunk = 64             # tokens per log-prob chunk (memory: B·chunk·V floats)
  c.train.share_prompt = True         # compute each group's prompt once in the update (exact;
                                      #   Prefix Grouper arXiv:2506.05433); False = per row
  c.train.memory_budget_gb = 0.0      # > 0: pick the cheapest model.remat whose compiled update
                                      #   peak (per device) fits; 0 = keep model.remat
  c.train.ckpt_every = 50             # checkpoint period in steps (and always at the end)
  c.train.keep_ckpts = 3              # checkpoints kept on disk (>= 1)
  c.train.keep_every = 0              # > 0: also keep every step divisible by this forever
  c.train.on_bad_ckpt = "fallback"    # damaged newest checkpoint: "fallback" (older one) or "stop"
  c.train.log_every = 1               # console line period (event files get every step)
  # DLER's update-selective weight merging (arXiv:2510.15110) of the trained policy into the
  # initial one; applied wherever a workdir's policy is loaded (concise_jax.eval, export).
  c.train.weight_merge = ml_collections.ConfigDict()
  c.train.weight_merge.top_fraction = 0.0  # update entries kept by magnitude; 0 = off (paper 0.25)
  c.train.weight_merge.scale = 0.7         # factor on the kept update (paper 0.7)
  c.train.weight_merge.per_tensor = True   # rank within each tensor (inferred) or over all

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 0                    # eval period in steps (also at step 0 and the end); 0 = never
  c.eval.num_prompts = 64             # test-split prompts, one sample each
  c.eval.temperature = 0.0            # 0 = greedy
  c.eval.samples_per_prompt = 1       # > 1 reports mean accuracy over samples (with temperature)

  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (1, -1, 1)           # (data, fsdp, tensor) per slice; one -1 = the rest
  c.mesh.dcn_shape = (1, 1, 1)        # across slices / hosts (multi-slice): e.g. (2, 1, 1)
  c.mesh.rules = sharding.DEFAULT_RULES  # logical axis → mesh axes
  return c


def shrink_for_local(c: ml_collections.ConfigDict, model: str) -> None:
  """`runlocal`: a run that finishes in seconds on a laptop CPU (and in the tests)."""
  c.data.num_prompts = 32
  c.rollout.prompts_per_step = 4
  c.rollout.group_size = 4
  c.rollout.max_new_tokens = 16 if model == "tiny" else 32
  c.verify.num_workers = 0
  c.optim.micro_batch = 8
  c.train.steps = 4
  c.train.ckpt_every = 2
  c.train.logp_chunk = 8
  c.eval.num_prompts = 8
  c.mesh.shape = (1, 1, 1)            # one device: tests simulate 8, laptops have 1


def apply_common_args(c: ml_collections.ConfigDict, arg: ml_collections.ConfigDict) -> None:
  """The `model=` and `runlocal` args every experiment file accepts."""
  if arg.model == "tiny":
    c.model.name = "tiny"
    c.optim.lr = 1e-3                # a random tiny model needs a large step to move at all
  elif arg.model != "smollm2":
    raise KeyError(f"unknown model arg {arg.model!r}; valid choices: smollm2, tiny")
  if arg.runlocal:
    shrink_for_local(c, arg.model)
