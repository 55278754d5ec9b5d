#!/usr/bin/env bash
# Qwen3.6-35B-A3B (35B total, 3B active), a reasoning model that thinks before it answers and
# calls tools in Qwen3-Coder's XML, on ONE 80 GB GPU. Needs vLLM >= 0.17.0 (vLLM's recipe).
#
# Qwen/Qwen3.6-35B-A3B-FP8 is ~35 GB of weights: one H100/H200 (or a 48 GB card with a shorter
# MAX_MODEL_LEN). BF16 (MODEL=Qwen/Qwen3.6-35B-A3B, ~70 GB) wants an H200, or GPUS=2.
#
# Window 262,144, the native length: the model card asks for at least 128K to keep thinking
# working, and preserve_thinking keeps every earlier turn's reasoning in the prompt, so a
# session grows faster than with a non-reasoning model. Only 10 of its 40 layers keep a KV cache
# (the rest are Gated DeltaNet), so a few sessions of that length still fit beside the weights.
# YARN=1 stretches the window to 1,010,000 tokens; read deploy/README.md ("Longer than 256K")
# first: it costs short prompts quality and each session far more memory.
#
# Flags: --reasoning-parser qwen3 splits the thinking from the answer; vLLM returns it in the
# message's `reasoning` field and, from 0.20 on, reads it back only from that field (qwen-fix
# sends it back in whatever field the server used). --default-chat-template-kwargs sets
# preserve_thinking for every client; qwen-fix also sends it with each request. The prompt
# stays append-only that way, so the prefix cache keeps hitting. --language-model-only skips the
# vision encoder (qwen-fix sends text only) to leave its memory to the KV cache. Prefix caching
# is asked for because vLLM kept it opt-in for hybrid models until vllm#50991 (Aug 2026).
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:8000/v1 MODEL_NAME=$MODEL. From that name
# it picks the qwen3.6 profile, and it reads the window (262,144) from /v1/models.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3.6-35B-A3B-FP8}
PORT=${PORT:-8000}
GPUS=${GPUS:-1}
CHAT_TEMPLATE_KWARGS=${CHAT_TEMPLATE_KWARGS-'{"preserve_thinking": true}'}

# YaRN rope scaling, factor 4 over the native 262,144, as the model card and vLLM's recipe give
# it. The override replaces the whole rope_parameters block, so it repeats the model's own.
yarn=()
case "${YARN:-0}" in
  0) ;;
  1)
    MAX_MODEL_LEN=${MAX_MODEL_LEN:-1010000}
    export VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
    yarn=(--hf-overrides '{"text_config": {"rope_parameters": {"mrope_interleaved": true, "mrope_section": [11, 11, 10], "rope_type": "yarn", "rope_theta": 10000000, "partial_rotary_factor": 0.25, "factor": 4.0, "original_max_position_embeddings": 262144}}}')
    ;;
  *) echo "qwen3.6-reasoning.sh: YARN must be 0 or 1, not '$YARN'" >&2; exit 2 ;;
esac
MAX_MODEL_LEN=${MAX_MODEL_LEN:-262144}

template_kwargs=()
if [[ -n $CHAT_TEMPLATE_KWARGS ]]; then
  template_kwargs=(--default-chat-template-kwargs "$CHAT_TEMPLATE_KWARGS")
fi

exec vllm serve "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tensor-parallel-size "$GPUS" \
  --max-model-len "$MAX_MODEL_LEN" \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.92}" \
  --language-model-only \
  --enable-prefix-caching \
  --reasoning-parser qwen3 \
  --enable-auto-tool-choice --tool-call-parser qwen3_coder \
  "${template_kwargs[@]}" \
  --enable-prompt-tokens-details \
  "${yarn[@]}" \
  "$@"
