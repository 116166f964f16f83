#!/bin/bash
# Issue 11, the smallest call that gives the batch-1 decode ratio: our decode with the current defaults (f32, mamba-130m
# and mamba2-130m, on the device) and then the official anchors (CUDA-graph decode; the Triton prefill too) in one call.
# run: BUDGET=70 bash scripts/gpu-machine.sh bash scripts/gpu-decode-anchor.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .anchors)
set -u
BUDGET=${BUDGET:-90}
source scripts/gpu-steps.sh
step 20 node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32 --gen 128 --reps 3 --decode v1
step 55 python3 .anchors/official_kernels_bench.py .anchors
grep -E "tok/s|rc=|SKIP" $LOG | grep -v "profiled step" | cut -c1-200
