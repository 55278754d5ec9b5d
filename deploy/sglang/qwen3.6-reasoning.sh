#!/usr/bin/env bash
# Qwen3.6-35B-A3B (35B total, 3B active), a reasoning model that calls tools in Qwen3-Coder's
# XML, with SGLang on ONE 80 GB GPU (H100, H200 or B200: tensor parallel 1 for FP8 and BF16 in
# SGLang's cookbook). Needs SGLang >= 0.5.10 (the cookbook).
#
# Window 262,144, the native length, for the reasons in deploy/vllm/qwen3.6-reasoning.sh (the
# card wants at least 128K for thinking; preserved reasoning makes sessions grow faster).
# YARN=1 stretches it to 1,010,000 tokens; read deploy/README.md ("Longer than 256K") first.
#
# Flags: --reasoning-parser qwen3 splits the thinking from the answer, which SGLang returns in
# `reasoning_content` (qwen-fix sends it back in that field). --default-chat-template-kwargs
# (added by sgl-project/sglang#29579, mid-2026) sets preserve_thinking for every client; on an
# older SGLang start with CHAT_TEMPLATE_KWARGS= (empty): qwen-fix sends the same kwarg with
# every request anyway. The radix (prefix) cache is on by default; --enable-cache-report returns
# usage.prompt_tokens_details.cached_tokens, which qwen-fix records per step.
#
# Point qwen-fix at it: MODEL_BASE_URL=http://HOST:30000/v1 MODEL_NAME=$MODEL. From that name
# it picks the qwen3.6 profile, and it reads the window (262,144) from /v1/models.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen3.6-35B-A3B-FP8}
PORT=${PORT:-30000}
GPUS=${GPUS:-1}
CHAT_TEMPLATE_KWARGS=${CHAT_TEMPLATE_KWARGS-'{"preserve_thinking": true}'}

# YaRN rope scaling, factor 4 over the native 262,144, as the model card gives it for SGLang.
# The override replaces the whole rope_parameters block, so it repeats the model's own.
yarn=()
case "${YARN:-0}" in
  0) ;;
  1)
    CONTEXT_LENGTH=${CONTEXT_LENGTH:-1010000}
    export SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1
    yarn=(--json-model-override-args '{"text_config": {"rope_parameters": {"mrope_interleaved": true, "mrope_section": [11, 11, 10], "rope_type": "yarn", "rope_theta": 10000000, "partial_rotary_factor": 0.25, "factor": 4.0, "original_max_position_embeddings": 262144}}}')
    ;;
  *) echo "qwen3.6-reasoning.sh: YARN must be 0 or 1, not '$YARN'" >&2; exit 2 ;;
esac
CONTEXT_LENGTH=${CONTEXT_LENGTH:-262144}

template_kwargs=()
if [[ -n $CHAT_TEMPLATE_KWARGS ]]; then
  template_kwargs=(--default-chat-template-kwargs "$CHAT_TEMPLATE_KWARGS")
fi

exec python3 -m sglang.launch_server \
  --model-path "$MODEL" \
  --host 0.0.0.0 --port "$PORT" \
  --tp "$GPUS" \
  --context-length "$CONTEXT_LENGTH" \
  --mem-fraction-static "${MEM_FRACTION_STATIC:-0.8}" \
  --reasoning-parser qwen3 \
  --tool-call-parser qwen3_coder \
  "${template_kwargs[@]}" \
  --enable-cache-report \
  --enable-metrics \
  "${yarn[@]}" \
  "$@"
