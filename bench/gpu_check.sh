#!/usr/bin/env bash
# GPU check, under 10 minutes on one H100/H200-class GPU (any count works): bf16 pretraining of the ~1B
# preset (TinyLlama-1.1B shape, vocabulary 32000) through the training loop with
#   1. FSDP2 (fully_shard per decoder layer, no activation checkpointing: the model fits): MFU, peak memory;
#   2. DDP on the same data and weights: the loss sequences must agree (bf16: max relative difference < 2e-2);
#   3. a new-rows stage (only the last 1000 embedding/LM-head rows train) under FSDP2: every old row must
#      stay bit-identical, the new rows must change.
# Prints one table and PASS/FAIL (exit status 1 on FAIL). Target: MFU >= 40 % on one H100/H200.
#   bash bench/gpu_check.sh [WORK_DIR]        (STEPS=20 MICRO=8 SEQ_LEN=2048 PRESET=1b to change the shape)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
STEPS=${STEPS:-20}
MICRO=${MICRO:-8}
SEQ_LEN=${SEQ_LEN:-2048}
PRESET=${PRESET:-1b}
NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -lt 1 ]; then
  echo "gpu_check: no CUDA device visible; nothing to check" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p "$WORK"
PORT=${PORT:-29600}

# Launch configs for this machine: every GPU, bf16; FSDP2 without activation checkpointing.
cat > "$WORK/fsdp.yaml" <<YAML
compute_environment: LOCAL_MACHINE
distributed_type: FSDP
mixed_precision: bf16
num_machines: 1
num_processes: $NGPU
machine_rank: 0
main_process_port: $PORT
rdzv_backend: static
same_network: true
use_cpu: false
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_reshard_after_forward: true
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_activation_checkpointing: false
  fsdp_cpu_ram_efficient_loading: false
  fsdp_offload_params: false
YAML
if [ "$NGPU" -gt 1 ]; then DDP_TYPE=MULTI_GPU; else DDP_TYPE="NO"; fi
cat > "$WORK/ddp.yaml" <<YAML
compute_environment: LOCAL_MACHINE
distributed_type: $DDP_TYPE
mixed_precision: bf16
num_machines: 1
num_processes: $NGPU
machine_rank: 0
main_process_port: $PORT
rdzv_backend: static
same_network: true
use_cpu: false
YAML

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
ROWS=$((STEPS * MICRO * NGPU + MICRO * NGPU))
timeout 180 python bench/gpu_check.py prepare "$WORK" --preset "$PRESET" --seq-len "$SEQ_LEN" --rows "$ROWS"
run() {  # name config extra-args...
  local name=$1 config=$2; shift 2
  echo "== $name"
  timeout 240 accelerate launch --config_file "$config" bench/gpu_check.py train "$WORK" "$name" \
    --steps "$STEPS" --micro "$MICRO" "$@" 2>&1 | grep -v "it/s\]" | tail -20
}
run fsdp "$WORK/fsdp.yaml"
run ddp "$WORK/ddp.yaml"
run fsdp_new_rows "$WORK/fsdp.yaml" --new-rows
python bench/gpu_check.py report "$WORK"
