#!/usr/bin/env bash
# Qwen3-Coder-Next (80B total, 3B active; no reasoning, Qwen3-Coder's XML tool calls) on ONE
# large GPU, for small teams. Needs vLLM >= 0.15.0 (the model card) for its hybrid layers:
# Gated DeltaNet in 36 of 48 layers, full attention in the other 12.
#
# Qwen/Qwen3-Coder-Next-FP8 is ~80 GB of weights: one 141 GB H200 (or a B200, MI300X) holds
# it with room for the KV cache; an 80 GB H100/A100 does not, so there set GPUS=2 (tensor
# parallel over two cards, as SGLang's cookbook does for FP8 on H100). BF16
# (MODEL=Qwen/Qwen3-Coder-Next, ~160 GB) needs GPUS=2 on H200s or GPUS=4 on H100s.
#
# Window 131,072: only the 12 attention layers keep a KV cache (2 KV heads x 256), ~24 KiB a
# token, so a session at full length costs ~3 GiB and an H200 keeps a dozen such sessions and
# their prefixes between turns. One qwen-fix session rarely needs more before it condenses;
# MAX_MODEL_LEN=262144 (the native length) halves how many fit.
#
# vLLM kept prefix caching opt-in for hybrid models until vllm#50991 (Aug 2026), so it is asked
# for here; the Gated DeltaNet state is cached in `align` mode (deploy/README.md says what that
# means for hit rates). --enable-prompt-tokens-details makes
# usage.prompt_tokens_details.cached_tokens appear, which qwen-fix records per step.
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:8000/v1 MODEL_NAME=$MODEL. From that name
# it picks the qwen3-coder-next profile, and it reads the window (131,072) from /v1/models.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3-Coder-Next-FP8}
PORT=${PORT:-8000}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-131072}
GPUS=${GPUS:-1}

exec vllm serve "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tensor-parallel-size "$GPUS" \
  --max-model-len "$MAX_MODEL_LEN" \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.92}" \
  --enable-prefix-caching \
  --enable-auto-tool-choice --tool-call-parser qwen3_coder \
  --enable-prompt-tokens-details \
  "$@"
