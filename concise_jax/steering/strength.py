"""Steering strength from a KL budget, measured on a calibration set.

For one next-token distribution p = softmax(z) and its steered version p_s = softmax(z + Δz),
with Δz = z_s − z the logit shift the steering causes,

    KL(p ‖ p_s) = log E_p[e^{Δz}] − E_p[Δz]                  (exact)
               ≤ (max Δz − min Δz)² / 8                      (Hoeffding's lemma).

The ASC paper (arXiv 2507.04742) derives γ from a KL budget; that closed form was not found
in the authors' code, and the second-order form ½γ²·vᵀFv is only the small-γ limit. Here Δz
is measured by a steered and an unsteered forward over calibration contexts, and γ is found
numerically (a bracket, then bisection on log γ) so the mean KL over the set equals the
target.

The KL is taken at the last position of each context, steered with the vector's position rule
in one forward: for "last" that is the one-step shift of the next-token distribution, which is
what every KV-cached decode step applies.
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from concise_jax import rollout
from concise_jax.models import transformer
from concise_jax.steering.pairs import Pair
from concise_jax.steering.vectors import SteeringVector


def kl_identity(z_bv: jax.Array, zs_bv: jax.Array) -> jax.Array:
  """[B] KL(softmax(z) ‖ softmax(zs)) as log E_p[e^{Δz}] − E_p[Δz]."""
  logp_bv = jax.nn.log_softmax(z_bv, axis=-1)
  dz_bv = zs_bv - z_bv
  dz_bv = dz_bv - jnp.max(dz_bv, axis=-1, keepdims=True)   # KL is shift-invariant in Δz
  return (jax.nn.logsumexp(logp_bv + dz_bv, axis=-1)
          - jnp.sum(jnp.exp(logp_bv) * dz_bv, axis=-1))


def kl_direct(z_bv: jax.Array, zs_bv: jax.Array) -> jax.Array:
  """[B] Σ p (log p − log p_s): the definition, for checking the identity."""
  logp_bv, logps_bv = jax.nn.log_softmax(z_bv, -1), jax.nn.log_softmax(zs_bv, -1)
  return jnp.sum(jnp.exp(logp_bv) * (logp_bv - logps_bv), axis=-1)


def hoeffding_bound(z_bv: jax.Array, zs_bv: jax.Array) -> jax.Array:
  """[B] (max Δz − min Δz)² / 8 ≥ KL(p ‖ p_s)."""
  dz_bv = zs_bv - z_bv
  return (jnp.max(dz_bv, -1) - jnp.min(dz_bv, -1)) ** 2 / 8


@functools.partial(jax.jit, static_argnames=("cfg",))
def last_logits(cfg, params, tokens_bs, mask_bs, steering=None) -> jax.Array:
  """[B, V] next-token logits at the last position (left-padded rows), optionally steered."""
  hidden_bsd, _ = transformer.forward(cfg, params, tokens_bs, mask_bs=mask_bs, steering=steering,
                                      return_logits=False)
  return transformer.output_logits(cfg, params, hidden_bsd[:, -1:])[:, 0]


@dataclasses.dataclass(frozen=True)
class Calibration:
  """Mean over the calibration contexts at one strength."""
  strength: float
  kl: float            # exact identity
  kl_direct: float     # Σ p (log p − log p_s), should equal `kl`
  hoeffding: float     # mean of the per-context bounds (≥ kl)
  hoeffding_max: float  # the largest per-context bound
  num_contexts: int

  def as_metadata(self) -> dict[str, str]:
    return {f"calibration_{k}": f"{v:.6g}" for k, v in dataclasses.asdict(self).items()}


class Calibrator:
  """Measures KL(p ‖ p_γ) on fixed contexts; the unsteered logits are computed once.

  Args:
    cfg, params: the model.
    contexts: token-id lists (left-padded here to one shape, so every strength reuses the
      compile).
    vector: the steering vector (its layer and rule).
    pad_id: padding id.
    rule: override the vector's position rule.
  """

  def __init__(self, cfg, params, contexts: Sequence[Sequence[int]], vector: SteeringVector,
               pad_id: int = 0, rule: str | None = None):
    self.cfg, self.params, self.vector, self.rule = cfg, params, vector, rule or vector.rule
    self.tokens, self.mask = rollout.left_pad(list(contexts), pad_id)
    self.z_bv = last_logits(cfg, params, self.tokens, self.mask)

  def measure(self, strength: float) -> Calibration:
    steering = self.vector.steering(float(strength), self.rule)
    zs_bv = last_logits(self.cfg, self.params, self.tokens, self.mask, steering)
    kl_b, direct_b, bound_b = (np.asarray(f(self.z_bv, zs_bv), np.float64)
                               for f in (kl_identity, kl_direct, hoeffding_bound))
    return Calibration(strength=float(strength), kl=float(kl_b.mean()),
                       kl_direct=float(direct_b.mean()), hoeffding=float(bound_b.mean()),
                       hoeffding_max=float(bound_b.max()), num_contexts=len(kl_b))


def solve_strength(kl_of: Callable[[float], float], target: float, *, start: float = 1.0,
                   rtol: float = 0.01, max_evals: int = 40) -> float:
  """γ > 0 with kl_of(γ) within `rtol` of `target`: doubling/halving from `start` to bracket,
  then bisection on log γ. KL(0) = 0 and KL grows with γ near 0; where it is not monotone this
  returns one crossing. After `max_evals` it returns the last midpoint."""
  if target <= 0:
    return 0.0
  evals = 0

  def err(g):
    nonlocal evals
    evals += 1
    return kl_of(g) - target

  g, lo, hi = start, None, None
  while True:
    e = err(g)
    if abs(e) <= rtol * target:
      return g
    lo, hi = (g, hi) if e < 0 else (lo, g)
    if lo is not None and hi is not None:
      break
    if evals >= max_evals:
      raise ValueError(f"could not bracket KL target {target} in {max_evals} evaluations")
    g = g * 2.0 if hi is None else g / 2.0
  while evals < max_evals:
    g = float(np.sqrt(lo * hi))
    e = err(g)
    if abs(e) <= rtol * target:
      break
    lo, hi = (g, hi) if e < 0 else (lo, g)
  return g


def calibrate(calibrator: Calibrator, target_kl: float, **kwargs) -> Calibration:
  """The strength whose mean KL on the calibration set is `target_kl`, with its measurements."""
  cache = {}
  def kl_of(g):
    cache[g] = calibrator.measure(g)
    return cache[g].kl
  g = solve_strength(kl_of, target_kl, **kwargs)
  return cache.get(g) or calibrator.measure(g)


def contexts_from_pairs(tokenizer, pairs: Sequence[Pair], *, cuts_per_answer: int = 2,
                        seed: int = 0, system: str | None = None) -> list[list[int]]:
  """Calibration contexts like the ones steering meets while generating: each chat-formatted
  problem alone, plus the problem followed by a random prefix of each of its answers."""
  rng = np.random.default_rng(seed)
  contexts = []
  for p in pairs:
    prompt = rollout.chat_ids(tokenizer, p.problem, system)
    contexts.append(prompt)
    for answer in (p.concise, p.verbose):
      ids = tokenizer.encode(answer)
      for cut in rng.integers(1, max(len(ids), 2), size=cuts_per_answer):
        contexts.append(prompt + ids[:int(cut)])
  return contexts
