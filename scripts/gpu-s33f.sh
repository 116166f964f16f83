#!/bin/bash
# Issue 11, session 33, call 2 (warm, after gpu-s33all.sh): -o8 at r8 for both mega kernels, MATVEC_BW's other forms at 2.8b
set -u
BUDGET=${BUDGET:-230}
source scripts/gpu-steps.sh
step 50 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-o8,mega-r16-o8,mega-r32-o8
step 50 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-o8,mega-r16-o8,mega-r32-o8,mega-r32
step 60 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b,mamba-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-b-r2u4,v1-b-r1u8,v1-b-r4u4
step 50 node dist/bench/webgpu.bench.js --presets llama-130m --weights f32 --prompt 2048 --gen 32 --reps 3 --no-profile
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|rc=|SKIP|===|not ok|profiled step" $LOG | cut -c1-330 | tail -90
