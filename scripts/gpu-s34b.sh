#!/bin/bash
# Issue 11, session 34, branch s34-mega2 (one call, ~200 s; priority order, a step past the budget is skipped):
# (1) Mamba-2's one-dispatch decode at mamba2-130m f32 and bf16: MEGA2's even split ('-e') and the projections' loads
#     in flight ('-u4', '-u8') beside v1 and 'mega-r32-o8' (session 33's best), v1 and mega-r32-o8 first and last
#     (v1 moved 10–30% between calls in session 33; the bench runs each setting's reps in a row);
# (2) the mega tests on the card (the several-workgroups cases at 16 workgroups: '-o8' and '-e' across workgroups) and
#     the parity tests;
# (3) '-e' at r16 and r8, '-e-u8' with the LM head inside ('-h'), and Mamba-1 (mamba-130m) with '-u' (its rowdot is the
#     same function).
# Expect on every mega line ~1.0–4 dispatches per token, "tokens equal" and one mega2/mega1 in the profiled step; a
# "[MEGA DID NOT RUN: …]" line measured v1. The anchors (session 33, same card kind): mamba2-130m 919 f32 / 856 bf16
# tok/s (targets 1,103 / 1,370), mamba-130m 838 / 796. WITH_ANCHOR=1 runs the official anchors first (+~150 s).
# run: BUDGET=200 bash scripts/gpu-machine.sh bash scripts/gpu-s34b.sh
set -u
BUDGET=${BUDGET:-200}
source scripts/gpu-steps.sh
[ "${WITH_ANCHOR:-0}" = 1 ] && step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 60 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 \
  --decode v1,mega-r32-o8,mega-r32-o8-e,mega-r32-o8-e-u4,mega-r32-o8-e-u8,mega-r32-o8-u4,mega-r32-o8,v1
step 70 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js
step 40 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 \
  --decode v1,mega-r16-o8-e,mega-r16-o8-e-u4,mega-o8-e-u4,mega-r32-o8-e-u8-h,mega-r32-o8-e-u4,v1
step 35 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 \
  --decode v1,mega-r32-o8,mega-r32-o8-u4,mega-r32-o8-u8,v1
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|DIFFER|rc=|SKIP|===|^# (pass|fail|skip)|not ok|profiled step|MEGA|NOT RUN|cuda " $LOG | cut -c1-330 | tail -120
