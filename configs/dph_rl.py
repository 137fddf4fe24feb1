r"""DPH-RL (Li et al., "The Choice of Divergence", arXiv:2509.07430).

Rehearsal against diversity collapse: groups the policy already solves (pass rate ≥ 1.0) train
only on a mass-covering divergence to the initial policy π_0 (forward KL; `js` also available),
the others only on the PPO surrogate without KL. The divergence uses the policy's own samples
re-weighted by min(π_0/π_old, 5) instead of the paper's stored π_0 samples; η = 0.1 and the
threshold are inferred.

  python -m concise_jax.main --config=configs/dph_rl.py:model=tiny,runlocal --workdir=runs/x

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import grpo


def get_config(arg: str | None = None):
  c = grpo.get_config(arg)
  c.teacher.model = "init"                        # pi_0: the initial policy, frozen
  c.loss.name = "dph_rl"
  c.loss.dph_rl.divergence = "fwd_kl"             # KL(pi_0 || pi_theta); "js" also
  c.loss.dph_rl.coef = 0.1                        # eta (inferred)
  c.loss.dph_rl.pef_threshold = 1.0               # near-perfect = every sample correct
  c.loss.dph_rl.is_cap = 5.0                      # cap of the pi_0 / pi_old sample weight
  c.aggregation.name = "token_mean"
  c.kl.coef = 0.0                                 # no reverse KL on D_exp
  return c
