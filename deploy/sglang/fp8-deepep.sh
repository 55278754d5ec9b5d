#!/usr/bin/env bash
# Qwen3-Coder-480B-A35B-Instruct-FP8 with SGLang on ONE node of 8 GPUs, experts exchanged
# through DeepEP's all-to-all kernels. DeepEP needs the expert-parallel size equal to the
# tensor-parallel size. Best for many concurrent sessions (large decode batches); the
# image must ship DeepEP (SGLang's release images do).
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:30000/v1 MODEL_NAME=$MODEL.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8}
PORT=${PORT:-30000}
CONTEXT_LENGTH=${CONTEXT_LENGTH:-131072}
GPUS=${GPUS:-8}

exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --context-length "$CONTEXT_LENGTH" \
  --tp "$GPUS" --ep "$GPUS" \
  --moe-a2a-backend deepep \
  --tool-call-parser qwen3_coder \
  --enable-cache-report \
  --enable-metrics \
  "$@"
