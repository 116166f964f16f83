#!/bin/bash
# Issue 11 on a lent GPU, in one device call: official anchors, then session 28's A/Bs (Mamba-2 2-8-row batches, q8 prefill tile loads), batch-1 decode f32/bf16/q8, parity tests on the card, attention, the torch anchor.
# Needs the carried folders of docs/gpu-machine.md and the build as .exp/dist.tar.xz; run: BUDGET=420 bash scripts/gpu-machine.sh bash scripts/gpu-bench-issue11.sh
set -u
BUDGET=${BUDGET:-430}
source scripts/gpu-steps.sh
step 60 python3 .anchors/official_kernels_bench.py .anchors
# session 28's A/Bs first (never timed on a GPU): Mamba-2 2-8-row batches (gemmSmallMin 9 vs 2, batch kernels fused vs fused-v1)
step 120 node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 512 --gen 64 --reps 2 --batch 1,2,4,8,16 --gemm-small-min 9,2 --batch-decode fused,fused-v1
step 90 node dist/bench/webgpu.bench.js --presets mamba-130m --weights f32 --prompt 512 --gen 64 --reps 2 --batch 1,4,8,16 --gemm-small-min 9,2 --batch-decode fused,fused-v1
# q8 prefill through 16-byte tile loads (vector) vs the scalar reader: the GEMMs alone, then end to end
step 60 node dist/bench/gemm.bench.js --m 2048 --sizes 130m,llama --weights f32,q8 --q8-tiles vector,scalar --kernels tiled,blocked --reps 20
step 120 node dist/bench/webgpu.bench.js --presets mamba-130m,mamba2-130m --weights f32,q8 --q8-tiles vector,scalar --prompt 2048 --gen 32 --reps 3 --batch 1
step 80 node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16,q8 --decode v1 --gen 128 --reps 3
step 60 node --test dist/test/backend/webgpu-delta.test.js dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-kv-cache.test.js dist/test/backend/webgpu-q8.test.js
# then the rest of the table while budget is left
step 80 node dist/bench/webgpu.bench.js --presets llama-130m,hybrid-130m --weights f32 --prompt 2048 --gen 32 --reps 2 --attention flash
step 60 bash -c 'mkdir -p /tmp/tb && cp .anchors/torch_bench.py /tmp/tb && cd /tmp/tb && python3 torch_bench.py cuda'
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
# digest for the reply's tail
grep -E "tok/s|TFLOP|CHECK|FAIL|max \||µs|ms|rc=|SKIP|===|^# (pass|fail)" $LOG | cut -c1-220 | tail -150
