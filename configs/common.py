"""Per-variant default kwargs, one table per registry: name → kwargs bound with functools.partial.

Every registered name has an entry (even an empty one): the base config builds one sub-dict per
variant from these tables, and config overrides may only change keys that exist here. Static
shapes (`group_size`) are not kwargs here; the call site binds them from the rollout config.
"""

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
}

ADVANTAGE_DEFAULTS = {
    "grpo": {
        "std_ddof": 1,               # unbiased group std, as torch.std in verl / TRL
        "eps": 1e-6,                 # added to the group std
    },
    "dr_grpo": {},                   # mean-centred only; no knobs
}

FILTER_DEFAULTS = {
    "none": {},                      # keep every group
    "nonzero_variance": {},          # DAPO: keep groups with 0 < #correct < G (raw correctness)
}

POLICY_LOSS_DEFAULTS = {
    "ppo_clip": {
        "eps_low": 0.2,              # ratio lower bound 1 - eps_low
        "eps_high": 0.2,             # ratio upper bound 1 + eps_high (DAPO clip-higher: 0.28)
        "dual_clip_c": None,         # None = off; verl default 3.0, DLER 10.0 (negative A only)
        "log_ratio_clamp": 20.0,     # |logp - old_logp| bound before exp
    },
}

AGGREGATION_DEFAULTS = {
    "token_mean": {},                # sum(m L) / sum(m): DAPO, verl default
    "seq_mean_token_sum": {
        "norm_const": 1.0,           # constant divisor; Dr. GRPO sets it to L_max (max_new_tokens)
    },
    "seq_mean_token_mean": {},       # GRPO paper: mean over tokens, then over sequences
}

KL_DEFAULTS = {
    "k3": {
        "log_ratio_clamp": 20.0,     # |ref - logp| bound before exp (verl low_var_kl)
        "value_clamp": 10.0,         # bound on the per-token estimate (verl low_var_kl)
    },
}
