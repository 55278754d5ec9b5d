#!/usr/bin/env bash
# Qwen3-Coder-480B-A35B-Instruct in FP8 on ONE node of 8 GPUs (H200 141 GB; H100 80 GB is too
# small for 480 GB of weights plus a useful KV cache).
#
# Expert parallel + data parallel 8: every GPU holds the attention weights and 1/8 of the
# experts. Plain tensor parallel 8 fails for FP8: an expert's width 2,560 / 8 = 320 is not a
# multiple of the 128-wide quantisation block (TP 4 + expert parallel also works).
# Prefix caching is on by default; the agent's append-only conversation keeps it hitting.
# --enable-prompt-tokens-details makes usage.prompt_tokens_details.cached_tokens appear, which
# qwen-fix records per step.
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:8000/v1 MODEL_NAME=$MODEL (the default).
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8}
PORT=${PORT:-8000}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-131072}
GPUS=${GPUS:-8}

# DeepGEMM's FP8 kernels for the MoE layers.
export VLLM_USE_DEEP_GEMM=${VLLM_USE_DEEP_GEMM:-1}

exec vllm serve "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --max-model-len "$MAX_MODEL_LEN" \
  --enable-expert-parallel \
  --data-parallel-size "$GPUS" \
  --enable-auto-tool-choice --tool-call-parser qwen3_coder \
  --enable-prompt-tokens-details \
  "$@"
