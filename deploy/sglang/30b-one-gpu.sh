#!/usr/bin/env bash
# Qwen3-Coder-30B-A3B-Instruct with SGLang on ONE GPU, for small teams (80 GB card for
# BF16; MODEL=Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8 on a 48 GB card).
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:30000/v1 MODEL_NAME=$MODEL.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-30B-A3B-Instruct}
PORT=${PORT:-30000}
CONTEXT_LENGTH=${CONTEXT_LENGTH:-65536}

exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --context-length "$CONTEXT_LENGTH" \
  --mem-fraction-static "${MEM_FRACTION_STATIC:-0.85}" \
  --tool-call-parser qwen3_coder \
  --enable-cache-report \
  --enable-metrics \
  "$@"
