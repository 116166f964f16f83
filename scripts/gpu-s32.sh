#!/bin/bash
# Issue 11, session 32, first call: (1) the official 130m anchors; (2) decodeKernels 'mega' (a Mamba-2 decode step as
# one persistent-kernel dispatch, branch s32-mega) against v1 at 130m, f32 and bf16, several workgroup counts / rows per
# pass; (3) v1 with 2/4 loads in flight at 130m; (4) the 2.8b bf16 matvec with 1/2/4 loads in flight (session 31: bf16
# streamed at 0.76 TB/s, f32 at 1.35) and mega there; (5) the official anchor at the 2.8b shape; (6) the mega tests and
# parity on the card.
# run: BUDGET=525 bash scripts/gpu-machine.sh bash scripts/gpu-s32.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .anchors)
set -u
BUDGET=${BUDGET:-505}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 100 node dist/bench/decode-kernels.bench.js --presets mamba2-130m,mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-g132-r8,mega-g132-r16,mega-g132-r32,mega-g66-r16
step 60 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js
step 45 node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16 --gen 128 --reps 3 --decode v1,v1-u2,v1-u4
step 90 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-u2,v1-u4,mega-g132-r16
step 80 bash scripts/gpu-anchor-2.8b.sh
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "^rep |tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|probe|MEGA|mega" $LOG | cut -c1-400 | tail -120
