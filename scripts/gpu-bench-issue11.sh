#!/bin/bash
# Issue 11 on a lent GPU, in one device call: official anchors, batch-1 decode kernel sets, batched decode, SSD, attention, torch anchor, q8, GEMMs, parity tests.
# Needs the carried folders of docs/gpu-machine.md and the build as .exp/dist.tar.xz; run: BUDGET=420 bash scripts/gpu-machine.sh bash scripts/gpu-bench-issue11.sh
set -u
T0=$(date +%s); BUDGET=${BUDGET:-430}
LOG=$OUT/all.log
tar xJf .exp/dist.tar.xz
export MAMBA_TS_REQUIRE_WEBGPU=1
step() { # step SECONDS CMD...
  local t=$1; shift; local el=$(( $(date +%s) - T0 )); local l=$(( BUDGET - el ))
  if [ $l -lt 15 ]; then echo "=== SKIP (budget) $*" | tee -a $LOG; return; fi
  [ $t -gt $l ] && t=$l
  echo "=== [t=${el}s] $* (limit ${t}s)" | tee -a $LOG
  timeout $t "$@" >> $LOG 2>&1; local rc=$?
  echo "=== rc=$rc after $(( $(date +%s) - T0 - el ))s" | tee -a $LOG
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >> $LOG
step 60 python3 .anchors/official_kernels_bench.py .anchors
step 80 node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16 --decode v1,fused --gen 128 --reps 2
step 80 node dist/bench/webgpu.bench.js --presets mamba-130m,mamba2-130m --weights f32 --prompt 2048 --gen 32 --reps 2 --batch 1,64 --fewrows off --gemm-small blocked --batch-decode fused,old
step 30 node dist/bench/ssd.bench.js --ssd fused,fused-v1,old --reps 10
step 80 node dist/bench/webgpu.bench.js --presets llama-130m,hybrid-130m --weights f32 --prompt 2048 --gen 32 --reps 2 --attention flash1,flash,flash-q64
step 60 bash -c 'mkdir -p /tmp/tb && cp .anchors/torch_bench.py /tmp/tb && cd /tmp/tb && python3 torch_bench.py cuda'
step 45 node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights q8 --decode v1,fused --gen 128 --reps 2
step 40 node dist/bench/gemm.bench.js --m 2048 --sizes 130m,llama --kernels tiled,sgmat,blocked,int8x3
step 60 node --test dist/test/backend/webgpu-delta.test.js dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-kv-cache.test.js dist/test/backend/webgpu-q8.test.js
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
# digest for the reply's tail
grep -E "tok/s|TFLOP|CHECK|max \||µs|ms|rc=|SKIP|===" $LOG | cut -c1-220 | tail -150
