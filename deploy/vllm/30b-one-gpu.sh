#!/usr/bin/env bash
# Qwen3-Coder-30B-A3B-Instruct on ONE GPU, for small teams.
#
# BF16 weights are ~61 GB: use an 80 GB card (H100/A100 80 GB). On a 48 GB card
# (L40S, RTX 6000 Ada) set MODEL=Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8 (~31 GB).
# A 64k window leaves room for the KV cache of several concurrent agent sessions; one
# session of qwen-fix rarely needs more before it condenses its context.
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:8000/v1 MODEL_NAME=$MODEL.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-30B-A3B-Instruct}
PORT=${PORT:-8000}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-65536}

exec vllm serve "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --max-model-len "$MAX_MODEL_LEN" \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.92}" \
  --enable-auto-tool-choice --tool-call-parser qwen3_coder \
  --enable-prompt-tokens-details \
  "$@"
