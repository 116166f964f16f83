#!/bin/bash
# Issue 11 (and 16's training speed), the first call of the session after 31: (1) the official 130m anchors (150 s: Triton
# compiles on a fresh machine); (2) batch-1 decode at 130m, 5 reps, with the per-kernel profile of a step printed (where
# ~1 ms of 76–100 dispatches goes); (3) the 2.8b bf16 matvec with 1/2/4 loads in flight (session 31: bf16 streamed at
# 0.76 TB/s, f32 at 1.35) and f32 beside; (4) the official anchor at the 2.8b shapes; (5) a training step of each MQAR
# model profiled per kernel (session 31: the Llama trained 7–15× slower than Mamba-2); (6) the CLI's fresh-state decode
# in parts (bench/webgpu-first-step.ts); (7) parity on the card.
# knobs: ANCHOR_S, WITH_28B=0, WITH_TRAIN=0, WITH_FIRST=0, WITH_DISPOSE=1
# run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s31.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .anchors)
set -u
BUDGET=${BUDGET:-480}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 75 node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,v1-u2,v1-u4
if [ "${WITH_28B:-1}" = 1 ]; then
  step 90 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-u2,v1-u4
  step 80 bash scripts/gpu-anchor-2.8b.sh
fi
# the CLI's fresh-state decode (26–216 ms per 16 tokens in session 31) in parts: first step, replayed steps, more steps
[ "${WITH_FIRST:-1}" = 1 ] && step 30 node dist/bench/webgpu-first-step.js --preset mamba2-130m --prompt 2048 --gen 16 --reps 5
[ "${WITH_DISPOSE:-0}" = 1 ] && step 30 node dist/bench/webgpu-first-step.js --preset mamba2-130m --prompt 2048 --gen 16 --reps 5 --dispose
[ "${WITH_TRAIN:-1}" = 1 ] && step 60 node dist/bench/train-gpu.bench.js --shapes mqar-mamba2,mqar-llama,mqar-hybrid --reps 3 --optimizer --profile
step 45 node --test dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-decode-candidates.test.js
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "^rep |^warm-up|tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|ms/step|ms per step" $LOG | cut -c1-400 | tail -120
