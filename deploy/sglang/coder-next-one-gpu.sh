#!/usr/bin/env bash
# Qwen3-Coder-Next (80B total, 3B active; no reasoning) with SGLang on ONE large GPU, for small
# teams. Needs SGLang >= 0.5.8 (the model card and SGLang's cookbook).
#
# Qwen/Qwen3-Coder-Next-FP8 (~80 GB of weights) runs on one H200, B200 or MI300X; on 80 GB
# H100s set GPUS=2 (the cookbook's tensor parallel size for FP8 there). Window 131,072 for the
# same reason as deploy/vllm/coder-next-one-gpu.sh: ~3 GiB of KV cache a session at full
# length, a dozen sessions on an H200.
#
# The radix (prefix) cache is on by default, for the Gated DeltaNet state too (the "mamba
# radix cache"). --enable-cache-report returns usage.prompt_tokens_details.cached_tokens, which
# qwen-fix records per step; --enable-metrics serves /metrics.
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:30000/v1 MODEL_NAME=$MODEL. From that name
# it picks the qwen3-coder-next profile, and it reads the window (131,072) from /v1/models.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-Next-FP8}
PORT=${PORT:-30000}
CONTEXT_LENGTH=${CONTEXT_LENGTH:-131072}
GPUS=${GPUS:-1}

exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tp "$GPUS" \
  --context-length "$CONTEXT_LENGTH" \
  --mem-fraction-static "${MEM_FRACTION_STATIC:-0.85}" \
  --tool-call-parser qwen3_coder \
  --enable-cache-report \
  --enable-metrics \
  "$@"
