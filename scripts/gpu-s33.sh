#!/bin/bash
# Issue 11, the first call of the session after 32: (1) the official 130m anchors (150 s: Triton compiles on a fresh
# machine); (2) decodeKernels 'mega' as merged in session 32 (a greedy step as ONE dispatch: the embedding gather and
# the LM head + argmax inside the persistent kernel; Mamba-1's x_proj on all workgroups) against v1 at 130m, f32 and
# bf16 — session 32's H100 call (before those changes): mamba2 bf16 mega 1,362.6 tok/s = 1.58× the CUDA graph, f32
# 1,078.6 = 1.17×; (3) the mega tests and parity on the card (session 32: two fallback tests failed there; one fixed);
# (4) mamba2-2.8b bf16 with mega (weights over up to 4 arenas) and v1 (4 loads in flight now the bf16 default), the
# 2.8b anchor; (5) the MQAR training step profiled (the Llama trained 7–15× slower than Mamba-2).
# run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s33.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .anchors)
set -u
BUDGET=${BUDGET:-560}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 100 node dist/bench/decode-kernels.bench.js --presets mamba2-130m,mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega,mega-r16,mega-r32
step 60 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js
step 90 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 64 --reps 3 --decode v1,mega,mega-r16
step 80 bash scripts/gpu-anchor-2.8b.sh
[ "${WITH_TRAIN:-1}" = 1 ] && step 70 node dist/bench/train-gpu.bench.js --shapes mqar-mamba2,mqar-llama,mqar-hybrid --reps 3 --optimizer --profile
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|probe|MEGA|LM HEAD|limits|ms/step|ms per step" $LOG | cut -c1-400 | tail -120
