#!/bin/bash
# Issue 11, session 33 (branch s33-mega1): Mamba-1's one-dispatch decode in 3 grid phases a layer (was 4; the count in
# BENCHMARKS "Session 33 (branch s33-mega1)") against v1 and session 32's 4-phase kernel ('-p4') at mamba-130m, f32
# and bf16, in one call: rows per pass 8/16/32 for both, and out_proj's rows apart ('-o8': its 5–6 rows a workgroup fit
# 8). Session 32 (H100, the 4-phase kernel before s32-mega2): f32 v1 787 / mega r8 820 / r16 777 / r32 594 tok/s, bf16
# 881 / 896 / 923 / 730; the CUDA-graph anchor 837 / 800 (targets 1.2× = 1,004 f32, 1.6× = 1,280 bf16). Then the mega
# tests and parity on the card (the several-workgroups cases run 16 workgroups there). WITH_ANCHOR=1 runs the official anchors first (150 s; not needed on a machine that ran
# gpu-s33.sh in the same session).
# run: BUDGET=320 bash scripts/gpu-machine.sh bash scripts/gpu-s33b.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .anchors)
set -u
BUDGET=${BUDGET:-320}
source scripts/gpu-steps.sh
[ "${WITH_ANCHOR:-0}" = 1 ] && step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 130 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 \
  --decode v1,mega-p4,mega,mega-r16-p4,mega-r16,mega-r16-o8,mega-r32-p4,mega-r32,mega-r32-o8
# Mamba-2's out_proj rows split evenly too ('-o8': round-robin blocks leave 36 / 84 / 108 of 132 workgroups idle at
# r8 / r16 / r32); session 32: f32 r8 1,078.6, bf16 r16 1,362.6 (targets 1,104 / 1,379). WITH_M2=0 skips it.
[ "${WITH_M2:-1}" = 1 ] && step 80 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 \
  --decode v1,mega,mega-o8,mega-r16,mega-r16-o8,mega-r32-o8
step 70 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|probe|MEGA|LM HEAD|limits" $LOG | cut -c1-400 | tail -80
