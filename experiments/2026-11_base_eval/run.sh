#!/usr/bin/env bash
# Base SmolLM2-135M-Instruct, greedy, 256 new tokens, the chat template's default system prompt.
# Run from the repository root; writes one results folder per invocation next to this file.
set -euo pipefail
OUT=experiments/2026-11_base_eval
DATA=${DATA_DIR:-../shared/data}
COMMON=(--checkpoint=smollm2-135m-instruct --max_new_tokens=256 --batch_size=32 --seed=0)

python -m concise_jax.eval "${COMMON[@]}" --instruction=answer_line --n=96 \
  --data='task:add_1digit,task:addsub_2digit,task:arithmetic?difficulty=1-5,task:word_problems?difficulty=1-4,task:linear_equations?difficulty=1-4' \
  --out_dir=$OUT/builtin
python -m concise_jax.eval "${COMMON[@]}" --instruction=countdown --n=96 \
  --data='task:countdown?difficulty=1-2' --out_dir=$OUT/countdown
python -m concise_jax.eval "${COMMON[@]}" --instruction=answer_line --n=128 \
  --data=mawps:$DATA/mawps_test.jsonl --out_dir=$OUT/mawps
python -m concise_jax.eval "${COMMON[@]}" --instruction=answer_line --n=128 \
  --data=gsm8k:$DATA/gsm8k_test.jsonl --out_dir=$OUT/gsm8k
