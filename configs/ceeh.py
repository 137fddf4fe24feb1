r"""CEEH — "Compress the Easy, Explore the Hard" (Luo et al., arXiv:2602.22642).

Correct answers are rewarded for beating a per-prompt, slowly-updated shortest correct length;
prompts whose group accuracy is at or below the dataset's mean accuracy EMA ("hard") get an
entropy term: EA (entropy-based advantage, the default and the released 1.5B model) or ME
(max-entropy loss, `--config.reward.ceeh.entropy_mode=me --config.reward.ceeh.schedule=cosine
--config.loss.entropy_coef=0.001`). Advantage mean-centred without std (Dr. GRPO form), clip
0.2/0.28, k3 KL 0.001 (low_var_kl), as in the official train.sh.

  python -m concise_jax.main --config=configs/ceeh.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.reward.name = "ceeh"
  c.reward.ceeh.length_scale = 0.1        # s (train.sh; the yaml default is 0.5)
  c.reward.ceeh.entropy_mode = "ea"       # EA: A' = A + hard * min(0.4 H, |A| / 2)
  c.reward.ceeh.schedule = "constant"     # k_t for EA
  c.advantage.name = "dr_grpo"            # norm_adv_by_std_in_grpo=False
  c.loss.ppo_clip.eps_high = 0.28         # clip-higher
  c.loss.entropy_coef = 0.0               # ME mode: 0.001 (c), weighted per token by the reward
  c.kl.coef = 0.001                       # low_var_kl loss
  return c
