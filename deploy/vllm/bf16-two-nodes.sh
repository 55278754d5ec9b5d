#!/usr/bin/env bash
# Qwen3-Coder-480B-A35B-Instruct in BF16 (~960 GB of weights) on TWO nodes of 8 GPUs each.
#
#   node A:  LEADER_ADDRESS=10.0.0.1 bash bf16-two-nodes.sh leader
#   node B:  LEADER_ADDRESS=10.0.0.1 bash bf16-two-nodes.sh follower
#
# One data-parallel group of 16 ranks (8 per node) with expert parallel: each GPU holds the
# attention weights and 1/16 of the experts. The leader runs the API server and data-parallel
# ranks 0-7; the follower is headless (no API server) and runs ranks 8-15. The ranks talk over
# NCCL: give both nodes a fast interconnect (InfiniBand/RoCE) and, if the wrong NIC is picked,
# set NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME.
#
# vLLM's data-parallel load balancer spreads requests over the 16 ranks without looking at
# their prefix caches; see deploy/README.md ("Keeping a session on one engine").
#
# Point qwen-fix at the leader: MODEL_BASE_URL=http://LEADER:8000/v1 MODEL_NAME=$MODEL.
set -euo pipefail

ROLE=${1:?usage: bf16-two-nodes.sh leader|follower [extra vllm flags]}
shift
MODEL=${MODEL:-Qwen/Qwen3-Coder-480B-A35B-Instruct}
LEADER_ADDRESS=${LEADER_ADDRESS:?set LEADER_ADDRESS to the address of the leader node}
RPC_PORT=${RPC_PORT:-13345}
PORT=${PORT:-8000}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-131072}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NODES=${NODES:-2}
NODE_RANK=${NODE_RANK:-}

case "$ROLE" in
  leader) NODE_RANK=0; role_flags=(--host 0.0.0.0 --port "$PORT") ;;
  # Any node but the first; NODE_RANK defaults to 1 for the two-node layout.
  follower) role_flags=(--headless) ;;
  *) echo "bf16-two-nodes.sh: ROLE must be leader or follower, not '$ROLE'" >&2; exit 2 ;;
esac
NODE_RANK=${NODE_RANK:-1}

exec vllm serve "$MODEL" \
  "${role_flags[@]}" \
  --max-model-len "$MAX_MODEL_LEN" \
  --enable-expert-parallel \
  --data-parallel-size $((GPUS_PER_NODE * NODES)) \
  --data-parallel-size-local "$GPUS_PER_NODE" \
  --data-parallel-start-rank $((GPUS_PER_NODE * NODE_RANK)) \
  --data-parallel-address "$LEADER_ADDRESS" \
  --data-parallel-rpc-port "$RPC_PORT" \
  --enable-auto-tool-choice --tool-call-parser qwen3_coder \
  --enable-prompt-tokens-details \
  "$@"
