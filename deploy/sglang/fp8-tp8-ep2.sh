#!/usr/bin/env bash
# Qwen3-Coder-480B-A35B-Instruct-FP8 with SGLang on ONE node of 8 GPUs: tensor parallel 8
# with the experts split over 2 expert-parallel groups.
#
# Prefix caching (RadixAttention) is on by default; --enable-cache-report returns
# usage.prompt_tokens_details.cached_tokens. --enable-metrics serves Prometheus
# metrics on /metrics (sglang:num_queue_reqs, sglang:token_usage, ...).
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:30000/v1 MODEL_NAME=$MODEL.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8}
PORT=${PORT:-30000}
CONTEXT_LENGTH=${CONTEXT_LENGTH:-131072}

exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --context-length "$CONTEXT_LENGTH" \
  --tp 8 --ep 2 \
  --tool-call-parser qwen3_coder \
  --enable-cache-report \
  --enable-metrics \
  "$@"
