#!/bin/bash
# Issue 11, session 33, call 1 on main with the session's helper branches (s33-mega1: Mamba-1's mega in 3 phases;
# s33-bf16: MATVEC_BW, the bf16 matvec 'v1-b'; s33-wall: leanHost; s33-attn: CPU only): the anchors, then mega for
# Mamba-2 (the greedy step as one dispatch, untimed since session 32; -o8) and Mamba-1 (3 phases vs session 32's 4,
# '-p4'), the mega tests, then the bf16 stream table and 2.8b decode with v1-b (gpu-s33d.sh's first two steps).
# Call 2 (warm): scripts/gpu-s33c.sh (the wall time) and what is left of gpu-s33d.sh.
# run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s33all.sh
set -u
BUDGET=${BUDGET:-560}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 80 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega,mega-o8,mega-r16,mega-r16-o8
step 100 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-p4,mega,mega-r16-p4,mega-r16,mega-r16-o8
step 60 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-matvec-bf16.test.js
BW=v1-b,v1-b-n,v1-b-r4u4,v1-b-r2u4,v1-b-r1u8,v1-b-r4u2s4,v1-b-r1u4s2,v1-b-r1u8s1
step 85 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1,2 \
  --shapes 2.8b.in_proj,2.8b.out_proj,130m.in_proj,130m.out_proj,130m.lm_head --kernels v1,v1-u4,v1-k4,$BW \
  --budget-s 75 --json ${OUT:-/tmp}/stream-bf16.json
step 75 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 \
  --decode v1,v1-b,v1-b-n,v1-b-r2u4,v1-b-r1u8
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|probe|MEGA|LM HEAD|limits|matvec_bw|matvec_v|NOT RUN" $LOG | cut -c1-400 | tail -160
