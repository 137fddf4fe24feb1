r"""The README main job: SmolLM2-135M-Instruct learns to answer single-digit additions concisely.

The base model, asked to "Think step by step.", writes ~90-token derivations that derail after a
correct first step; told to be brief it is right far more often in ~10 tokens (measured).
So a length-aware reward should raise accuracy AND cut tokens, which is what this run shows in
~20 minutes on a 2-core CPU: GRPO-λ (Kimi length term in the most accurate half of the groups),
LoRA adapters (the backward skips the base weights' gradients), no KL term (LoRA already keeps
the policy near the base; the reference forward would cost a quarter of the update), one
optimizer step per rollout (on-policy: no separate old-log-prob pass). The held-out test split
is evaluated before and after (8 samples per prompt at the training temperature); `python -m concise_jax.main` prints the table.

  python -m concise_jax.main --config=configs/quickstart.py --workdir=runs/quickstart

Arg: `model=smollm2|tiny` (default smollm2) and `runlocal` (a seconds-long CPU run).
"""
from configs import common, grpo_lambda


def get_config(arg: str | None = None):
  c = grpo_lambda.get_config(arg)
  parsed = common.parse_arg(arg, model="smollm2", runlocal=False)
  c.data.dataset = "task:add_1digit"
  c.data.instruction = "step_by_step"     # the verbose starting point (~90 tokens)
  c.model.lora.rank = 16
  c.model.lora.alpha = 32.0
  c.kl.coef = 0.0
  c.eval.temperature = c.rollout.temperature  # sampled, as in training: the sampler compiles once
  c.eval.samples_per_prompt = c.rollout.group_size
  if parsed.model == "smollm2":
    c.optim.lr = 1e-4                     # LoRA wants ~10x the full fine-tuning rate
  if not parsed.runlocal:
    c.rollout.prompts_per_step = 4        # P × G = 32 samples per step
    c.rollout.group_size = 8
    c.rollout.max_new_tokens = 128        # truncation = no answer = wrong
    c.rollout.max_prompt_tokens = 48      # the chat prompts are 44 tokens: less padding to train
    c.optim.micro_batch = 8
    c.train.steps = 12
    c.train.ckpt_every = 6
    c.eval.every = 12                     # step 0 and the end
    c.eval.num_prompts = 16               # × 8 samples = 128 held-out completions
  return c
