"""Per-variant default kwargs, one table per registry: name → kwargs bound with functools.partial.

Every registered name has an entry (even an empty one): the base config builds one sub-dict per
variant from these tables, and config overrides may only change keys that exist here. Static
shapes (`group_size`) are not kwargs here; the call site binds them from the rollout config.

Below the tables, `base_config()` builds the one config every experiment file starts from.
"""
import ml_collections
from ml_collections import config_dict

from concise_jax import advantages, budgets, filters, losses, rewards, sharding


REWARD_DEFAULTS = {
    "correctness": {
        "correct_reward": 1.0,       # reward of a correct answer
        "wrong_reward": 0.0,         # reward of a wrong / truncated / unparsable answer
    },
    "correctness_format": {
        "format_weight": 0.1,        # bonus for a well-formed answer (our choice; R1 gives none)
    },
    "kimi_length": {                 # Laser's compute_kimi_penalty defaults (rewards.md §14)
        "correct_reward": 1.0,       # base reward C of a correct answer
        "wrong_reward": -0.5,        # base reward C of a wrong answer
        "length_weight": 0.4,        # w on the group min-max length term in [-0.5, 0.5]
    },
    "grpo_lambda": {                 # rewards.md §1; all three values inferred (not in the paper)
        "top_fraction": 0.5,         # λ: share of groups (by correctness ratio) given the penalty
        "min_correct_ratio": 0.0,    # groups at or below this ratio always get the 0/1 reward
        "length_weight": 0.4,        # weight of the Kimi length term in selected groups
    },
    "dler": {                        # rewards.md §2: r = I(correct, not cut off, L <= L_T)
        "max_len": None,             # L_T below the rollout cap; None = the cap only (paper)
    },
    "da_dler": {                     # rewards.md §2 DA-DLER; tier order/`>=` at p=0.5 inferred
        "thresholds": (0.5,),        # group correctness-ratio thresholds, increasing
        "caps": (4000, 2000),        # length cap per tier, hardest first (paper, 4000-token cap)
    },
    "drpo": {                        # rewards.md §3, emitted as gradient weights (see drpo.py)
        "lam": 0.1,                  # λ: temperature of the length weights over correct answers
        "tau": 10.0,                 # τ: log-sum-exp temperature over wrong answers
        "max_len": None,             # L_pad; None = padded response width (inferred)
    },
    "hapo_cosine": {                 # rewards.md §6, official code defaults
        "length_weight": 1.0,        # w_lr on the history length term
        "mode": "min",               # history: "min" shortest correct, "mean" running mean
        "correct_floor": -0.7,       # floor of a correct answer's length term
    },
    "hapo_linear": {                 # rewards.md §6, official code defaults
        "length_weight": 1.0,        # w_lr on the history length term
        "mode": "min",               # history: "min" shortest correct, "mean" running mean
        "tolerance": 0.1,            # τ: neutral band [h, (1+τ)h)
        "correct_floor": -0.7,       # floor of a correct answer's length term
        "wrong_floor": -1.0,         # floor of a wrong answer's length term
    },
    "arlcp": {                       # rewards.md §8, official code defaults
        "count_thresholds": (40, 80),            # reflection-count tiers (inclusive bounds)
        "reflection_weights": (0.05, 0.10, 0.15),  # w1 per tier; w2 = total_weight - w1
        "total_weight": 0.2,         # w1 + w2
        "std_ddof": 1,               # group std over correct answers (statistics.stdev)
        "eps": 1e-6,                 # added to the std
    },
    "cosine_length": {               # Yeo et al. arXiv:2502.03373 §4.2 (not in rewards.md)
        "max_len": None,             # L_max; None = the rollout cap
        "correct_short": 2.0,        # r_0^c: correct answer at length 0
        "correct_long": 1.0,         # r_L^c: correct answer at L_max
        "wrong_short": -10.0,        # r_0^w: wrong answer at length 0
        "wrong_long": 0.0,           # r_L^w: wrong answer at L_max
        "exceed_reward": -10.0,      # r_exceed: cut off at the cap
    },
    "linear_length": {               # inferred: linear twin of cosine_length, same endpoints
        "max_len": None,             # L_max; None = the rollout cap
        "correct_short": 2.0,        # correct answer at length 0
        "correct_long": 1.0,         # correct answer at L_max
        "wrong_short": -10.0,        # wrong answer at length 0
        "wrong_long": 0.0,           # wrong answer at L_max
        "exceed_reward": -10.0,      # cut off at the cap
    },
    "soft_overlong": {               # DAPO (objectives.md §3)
        "max_len": None,             # L_max; None = the rollout cap
        "buffer": 4096,              # L_cache: soft-penalty zone before L_max (paper)
        "penalty_factor": 1.0,       # weight of the length term (verl)
    },
    "ceeh": {                        # rewards.md §4, train.sh / yaml defaults
        "length_scale": 0.1,         # s on (len_ref - L)/len_ref (train.sh; yaml 0.5)
        "length_floor": -0.9,        # lower bound of the length term
        "len_rate_down": 0.2,        # len_ref EMA rate when the new shortest correct is shorter
        "len_rate_up": 0.05,         # len_ref EMA rate when it is longer
        "acc_rate_up": 0.2,          # acc_ema EMA rate when accuracy rises
        "acc_rate_down": 0.05,       # acc_ema EMA rate when accuracy falls
        "entropy_mode": "ea",        # "ea" entropy advantage | "me" max-entropy loss | "none"
        "schedule": "constant",      # k_t: constant (EA) | linear | cosine (ME); T = decode cap
        "alpha_e": 0.4,              # EA: scale of the sampling entropy in the bonus
        "kappa": 2.0,                # EA: bonus capped at |A| / kappa
        "me_factor": 5.0,            # ME: F, entropy weight of hard prompts (c = loss.entropy_coef)
    },
    "dot": {                         # rewards.md §5, DOT run_dot.sh defaults
        "alpha": 3.0,                # T_g = floor(mean_g L + alpha * std_g L), all-correct groups
        "margin": 32.0,              # cut when L - T_g >= margin (< 1: relative to L)
        "success_threshold": 1.0,    # group accuracy needed before its outliers are cut
        "min_relative_margin": 16,   # floor of a relative margin, in tokens
        "correct_reward": 1.0,       # reward when the (cut) answer verifies
        "wrong_reward": 0.0,         # reward otherwise
        "pass_rate_window": 16,      # W: batch pass rates kept (the reward's state)
    },
    "laser": {                       # rewards.md §9, Laser code defaults
        "target_length": 4096,       # L_T in tokens (paper: 2048 / 4096 / 8192)
        "alpha": 0.5,                # step bonus
        "length_reward_type": "reward",  # "reward" (paper) | "penalty" | "hybrid"
        "correct_reward": 1.0,       # C of a correct answer
        "wrong_reward": -0.5,        # C of a wrong answer with an answer marker
        "no_answer_reward": -1.0,    # C without a final answer (format_ok false)
    },
    "laser_d": {                     # rewards.md §9; monitor knobs are read by host_features
        "alpha": 0.5,                # step bonus
        "length_reward_type": "reward",  # "reward" | "penalty" | "hybrid"
        "correct_reward": 1.0,       # C of a correct answer
        "wrong_reward": -0.5,        # C of a wrong answer with an answer marker
        "no_answer_reward": -1.0,    # C without a final answer
        "monitor_freq": 20,          # steps between band-target updates (0 = never)
        "monitor_prompts": 500,      # fixed monitor set: the first N training prompts
        "monitor_samples": 8,        # rollouts per monitor prompt (inferred: the training G)
        "grid_lower": 4096,          # smallest candidate target (tokens)
        "grid_upper": 16384,         # largest candidate target (tokens)
        "grid_step": 1024,           # grid spacing (tokens)
        "expected_correct": 1,       # K_exp
        "correct_only": False,       # coverage of correct answers only (paper reading; code: all)
    },
    "laser_de": {                    # rewards.md §9; laser_d plus the exploration bonus
        "alpha": 0.5,                # step bonus (also the exploration bonus)
        "length_reward_type": "reward",  # "reward" | "penalty" | "hybrid"
        "correct_reward": 1.0,       # C of a correct answer
        "wrong_reward": -0.5,        # C of a wrong answer with an answer marker
        "no_answer_reward": -1.0,    # C without a final answer
        "monitor_freq": 20,          # steps between band-target updates (0 = never)
        "monitor_prompts": 500,      # fixed monitor set: the first N training prompts
        "monitor_samples": 8,        # rollouts per monitor prompt (inferred: the training G)
        "grid_lower": 4096,          # smallest candidate target (tokens)
        "grid_upper": 16384,         # largest candidate target (tokens)
        "grid_step": 1024,           # grid spacing (tokens)
        "expected_correct": 1,       # K_exp
        "correct_only": False,       # coverage of correct answers only (paper reading; code: all)
        "ngram": 20,                 # inferred: repetition detector window (tokens)
        "min_repeats": 3,            # inferred: a window seen this often = repetitive
    },
    "pear": {                        # rewards.md §11; every value inferred (not found)
        "alpha": 1.0,                # weight of answer-phase entropy inside the max
        "penalty_weight": 1.0,       # w on max(0, H_think - alpha * H_answer)
        "max_penalty": 0.5,          # clip of the penalty (correct stays above wrong)
        "penalize_wrong": False,     # also penalise wrong answers
        "correct_reward": 1.0,       # r_correct of a correct answer
        "wrong_reward": 0.0,         # r_correct of a wrong answer
    },
    "decs": {                        # rewards.md §7, DECS code defaults
        "beta": 0.1,                 # length bonus on necessary tokens
        "kappa_lr": 0.2,             # eta: curriculum rate on the necessary-token ratio
        "judge": "first_correct_line",  # host_features.REDUNDANCY_JUDGES name
    },
    "l1_exact": {                    # L1-Exact (rewards.md §15a)
        "alpha": 0.0003,             # per token of |n - L| (code default, for n up to 4000)
    },
    "efficient_reasoning": {         # Arora & Zanette arXiv:2502.04463 (until A's sections)
        "alpha": 0.1,                # length discount of a correct answer
        "std_ddof": 0,               # population std of the correct lengths (inferred)
        "eps": 1e-6,                 # added to that std
    },
    "l1_max": {                      # L1-Max (rewards.md §15a)
        "form": "paper",             # paper: c*clip(a(n-L)+delta,0,1); code: additive|multiplier
        "alpha": 0.01,               # slope (paper form 0.01; the code's variants use 0.0003)
        "delta": 0.5,                # paper form's reward of a correct answer at exactly n
    },
}

ADVANTAGE_DEFAULTS = {
    "grpo": {
        "std_ddof": 1,               # unbiased group std, as torch.std in verl / TRL
        "eps": 1e-6,                 # added to the group std
    },
    "dr_grpo": {},                   # mean-centred only; no knobs
    "decs_position": {               # DECS: per token position within the group
        "std_ddof": 1,               # unbiased std (torch.std), as grpo
        "eps": 1e-6,                 # added to the std (DECS code: 1e-6)
    },
    "rloo": {},                      # leave-one-out baseline, G/(G-1)(r - mean_g); no knobs
    "reinforce_pp": {                # REINFORCE++: batch-whitened discounted returns
        "gamma": 1.0,                # discount of the token-reward return (verl default)
        "eps": 1e-8,                 # added to the batch variance (verl masked_whiten)
    },
    "reinforce_pp_baseline": {       # DLER's batch-wise normalisation (rewards.md section 2)
        "eps": 1e-8,                 # added to the batch variance (verl masked_whiten)
    },
    "gtpo": {                        # GTPO authors' code defaults (objectives.md section 6a)
        "w_conflict": 2.0,           # lambda on conflict tokens of positive completions (W_RAW)
        "ent_threshold": 0.7,        # mean entropy above which A_i is zeroed (~ ln 2)
        "ent_scale": 0.1,            # gamma: A_i -= ent_scale * mean entropy below the threshold
        "divide_by_conflicts": True,  # code divides by #conflict tokens; README formula does not
        "std_ddof": 1,               # group std of the GRPO base advantage (unbiased)
        "eps": 1e-6,                 # added to the group std
    },
}

FILTER_DEFAULTS = {
    "none": {},                      # keep every group
    "nonzero_variance": {},          # DAPO: keep groups with 0 < #correct < G (raw correctness)
    "balanced_difficulty": {         # Bae et al. arXiv:2504.03380; band recalled, not sourced
        "p_low": 0.25,               # keep groups with pass rate >= p_low
        "p_high": 0.75,              # ... and <= p_high
    },
}

POLICY_LOSS_DEFAULTS = {
    "ppo_clip": {
        "eps_low": 0.2,              # ratio lower bound 1 - eps_low
        "eps_high": 0.2,             # ratio upper bound 1 + eps_high (DAPO clip-higher: 0.28)
        "dual_clip_c": None,         # None = off; verl default 3.0, DLER 10.0 (negative A only)
        "log_ratio_clamp": 20.0,     # |logp - old_logp| bound before exp
    },
    "gspo": {                        # GSPO paper v2 section 5.1 (LUSPO: 2e-3 / 2.5e-3)
        "eps_low": 3e-4,             # sequence-ratio lower bound 1 - eps_low
        "eps_high": 4e-4,            # sequence-ratio upper bound 1 + eps_high
        "seq_log_ratio_max": 10.0,   # upper clamp of log s (verl)
    },
    "cispo": {                       # MiniMax-M1: no lower bound, only the upper one tuned
        "eps_low": 1.0,              # weight lower bound 1 - eps_low (1.0 = lower clip off)
        "eps_high": 0.28,            # weight upper bound 1 + eps_high (inferred: Trinity-RFT)
        "cap_mode": "band",          # "band" (paper, verl) or "abs_max" (TRL: min(rho, abs_cap))
        "abs_cap": 5.0,              # absolute cap on rho in "abs_max" mode (ScaleRL)
        "log_ratio_clamp": 20.0,     # |logp - old_logp| bound before exp
    },
    "dispo": {                       # DISPO; form and all four bounds inferred (not found)
        "eps_low_pos": 0.2,          # correct responses: weight >= 1 - eps_low_pos
        "eps_high_pos": 0.28,        # correct responses: weight <= 1 + eps_high_pos
        "eps_low_neg": 0.2,          # incorrect responses: weight >= 1 - eps_low_neg
        "eps_high_neg": 0.28,        # incorrect responses: weight <= 1 + eps_high_neg
        "outside_band": "mask",      # "mask" (no gradient outside) or "clip" (CISPO, 4 bounds)
        "log_ratio_clamp": 20.0,     # |logp - old_logp| bound before exp
    },
    "reinforce": {},                 # -A * exp(logp - sg(logp)); GTPO's on-policy ratio
    "kdrl": {                        # KDRL (objectives.md section 9a); needs config.teacher.model
        "kd_coef": 5e-3,             # beta (paper anneals 5e-3 -> 1e-3; constant here)
        "estimator": "k2",           # KL estimator of the reverse KL to the teacher
        "mask_correct": True,        # reward-guided KD: no KD term on correct responses
        "eps_low": 0.2,              # PPO surrogate lower clip
        "eps_high": 0.2,             # PPO surrogate upper clip
        "dual_clip_c": None,         # PPO dual clip (None = off)
        "log_ratio_clamp": 20.0,     # |logp - old_logp| bound before exp
    },
    "dph_rl": {                      # DPH-RL (section 9b); needs config.teacher.model = "init"
        "divergence": "fwd_kl",      # "fwd_kl" KL(pi_0 || pi) or "js"
        "coef": 0.1,                 # eta of the rehearsal divergence (inferred)
        "pef_threshold": 1.0,        # group pass rate from which only the divergence applies
        "is_cap": 5.0,               # cap of the pi_0 / pi_old sample weight; None = weight 1
        "eps_low": 0.2,              # PPO surrogate lower clip
        "eps_high": 0.2,             # PPO surrogate upper clip
        "dual_clip_c": None,         # PPO dual clip (None = off)
        "log_ratio_clamp": 20.0,     # |logp - old_logp| bound before exp
    },
}

AGGREGATION_DEFAULTS = {
    "token_mean": {},                # sum(m L) / sum(m): DAPO, verl default
    "seq_mean_token_sum": {
        "norm_const": 1.0,           # constant divisor; Dr. GRPO sets it to L_max (max_new_tokens)
    },
    "seq_mean_token_mean": {},       # GRPO paper: mean over tokens, then over sequences
    "seq_mean_token_sum_norm": {
        "norm_const": None,          # C of sum(m L) / C (no / B, verl); None = padded width T
    },
}

KL_DEFAULTS = {
    "k3": {
        "log_ratio_clamp": 20.0,     # |ref - logp| bound before exp (verl low_var_kl)
        "value_clamp": 10.0,         # bound on the per-token estimate (verl low_var_kl)
    },
    "k1": {},                        # logp - ref (unbiased value, zero-mean gradient)
    "k2": {},                        # (logp - ref)^2 / 2 (gradient-unbiased reverse KL)
}

# Budget knobs in tokens, or (values <= 1) as a fraction of rollout.max_new_tokens.
BUDGET_DEFAULTS = {
    "none": {},                      # every prompt gets rollout.max_new_tokens
    "tlts": {                        # Train Long, Think Short (rewards.md §10)
        "start": None,               # B0; None = the rollout cap (paper: 256 = its cap)
        "gamma": 0.75,               # decay per period (inferred; not found)
        "period": 10,                # steps per decay (inferred; not found)
        "floor": 0.25,               # final budget (inferred; not found)
        "linear_steps": 0,           # > 0: linear decay to the floor over this many steps
    },
    "thinkprune": {                  # ThinkPrune rounds (rewards.md §15b)
        "limits": (1.0, 0.75, 0.5),  # caps per round (paper: 4000, 3000, 2000 tokens)
        "steps_per_round": 50,       # inferred (the paper retrains ~10 epochs per round)
    },
    "siri": {                        # SIRI compress/expand cycles (rewards.md §12)
        "low": 0.5,                  # compression cap (inferred; not found)
        "high": None,                # expansion cap; None = the rollout cap (inferred)
        "period": 40,                # steps per low-high-low cycle (inferred; not found)
        "start_low": True,           # begin with compression (inferred)
    },
    "uniform": {                     # per-prompt random budget (L1's n ~ U{100..4000})
        "low": 0.25,                 # smallest budget
        "high": None,                # largest; None = the rollout cap
        "seed": 0,                   # draws are a function of (seed, step, prompt id)
    },
    "palu": {                        # PALU per-prompt budgets (rewards.md §13)
        "target_accuracy": 0.5,      # C: group accuracy at which the budget shrinks (inferred)
        "quantile": 0.5,             # of the group's correct lengths (inferred; not found)
        "min_budget": 8,             # tokens; a budget never shrinks below this
    },
    "da_dler_caps": {                # DA-DLER tiers as a per-prompt decode cap (rewards.md §2)
        "threshold": 0.5,            # previous group accuracy at which a prompt counts as easy
        "easy_cap": 0.5,             # easy prompts' cap (paper: 2000 of 4000)
    },
}


# --------------------------------------------------------------------------- base config
# Everything below builds the one config every experiment file starts from.

# Registry-backed sections: config.<section>.name picks a variant, config.<section>.<variant>
# holds its kwargs (one sub-dict per registered variant, from the tables above).
SECTION_TABLES = {
    "reward": REWARD_DEFAULTS,
    "advantage": ADVANTAGE_DEFAULTS,
    "filter": FILTER_DEFAULTS,
    "loss": POLICY_LOSS_DEFAULTS,
    "aggregation": AGGREGATION_DEFAULTS,
    "kl": KL_DEFAULTS,
    "budget": BUDGET_DEFAULTS,
}


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


def _variant_dicts(table: dict, names: list[str]) -> dict:
  """One kwargs sub-dict per registered name; None defaults become overridable placeholders."""
  missing = [n for n in names if n not in table]
  if missing:
    raise KeyError(f"registered variants {missing} have no entry in configs/common.py tables")
  return {name: {k: config_dict.placeholder(object) if v is None else v
                 for k, v in table[name].items()} for name in names}


def _registries() -> dict:
  return {"reward": rewards.REWARDS, "advantage": advantages.ADVANTAGES,
          "filter": filters.GROUP_FILTERS, "loss": losses.POLICY_LOSSES,
          "aggregation": losses.AGGREGATIONS, "kl": losses.KL_ESTIMATORS,
          "budget": budgets.BUDGET_SCHEDULES}


def base_config() -> ml_collections.ConfigDict:
  """Every knob of a run with its default: SmolLM2-135M, single-digit addition, plain GRPO."""
  c = ml_collections.ConfigDict()
  c.seed = 0                          # init (fold_in 0), data order, sampling (fold_in 2)

  c.model = ml_collections.ConfigDict()
  c.model.name = "smollm2-135m-instruct"  # known name, "tiny" (test model) or checkpoint path
  c.model.remat = True                # rematerialise each layer in the backward (memory)
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

  c.rollout = ml_collections.ConfigDict()
  c.rollout.prompts_per_step = 8      # P: prompt groups in one update
  c.rollout.group_size = 8            # G: samples per prompt
  c.rollout.max_new_tokens = 128      # T: decode budget (L_max)
  c.rollout.max_prompt_tokens = 64    # S: prompts are left-padded to this (static shapes)
  c.rollout.temperature = 0.7         # SmolLM2 degenerates at 1.0 (baselines.md)
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

  c.verify = ml_collections.ConfigDict()
  c.verify.num_workers = 2            # answer-checking processes; 0 = check in this process
  c.verify.timeout_s = 2.0            # hard per-answer time limit (pool only)

  for section, table in SECTION_TABLES.items():
    c[section] = ml_collections.ConfigDict(
        _variant_dicts(table, _registries()[section].names()))
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

  c.train = ml_collections.ConfigDict()
  c.train.steps = 200                 # updates (rollout + update) in the run
  c.train.ppo_epochs = 1              # passes over each rollout batch
  c.train.recompute_old_logp = True   # old log-probs from the training forward, not the sampler
  c.train.logp_chunk = 64             # tokens per log-prob chunk (memory: B·chunk·V floats)
  c.train.ckpt_every = 50             # checkpoint period in steps (and always at the end)
  c.train.keep_ckpts = 3              # checkpoints kept on disk (>= 1)
  c.train.keep_every = 0              # > 0: also keep every step divisible by this forever
  c.train.on_bad_ckpt = "fallback"    # damaged newest checkpoint: "fallback" (older one) or "stop"
  c.train.log_every = 1               # console line period (event files get every step)

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
