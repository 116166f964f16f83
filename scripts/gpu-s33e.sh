#!/bin/bash
# Issue 11, batched decode at 2–16 rows (session 33, branch s33-rows): MATVEC_R (kernels/matvec_rows.ts, `decodeRows`)
# against the paths of before, on the card. Session 29 (H100, total tok/s on the device, f32): mamba2-130m batch 1 915,
# 2 1,272, 4 1,704, 8 2,584, 16 7,818; mamba-130m 1 876, 4 2,118, 8 2,739, 16 6,215 — matvec_v 19.4 µs a call at 1 row,
# 50.5 at 8. Goal: a step at 2–16 rows within ~1.3× of batch 1's GPU time (batch 8 ≥ 5× batch 1's total, 16 ≥ 10×).
# (1) the kernel's tests on the card (f32/bf16/q8 products at 2–16 rows, epilogues, 10 rows decoded = alone);
# (2) webgpu.bench, --decode-rows 0,16 (off: matvec ≤ 8 rows, blocked GEMM 9–64; on: MATVEC_R 2–16) in one process,
#     batch 1–64, the 8-row step profiled in each mode (kernel times: matvec_v vs matvec_rows per call), f32 and bf16,
#     each run checking batched tokens = rows alone (CHECK FAILED otherwise);
# (3) the P rule swept at 8 and 16 rows (MAMBA_TS_WEBGPU_ROWS_GROUPS: 0 = the tallest workgroups, 256 = more of them),
#     with --decode-rows 8,16: 16 rows on the blocked GEMM (8) vs MATVEC_R (16), the 16-row step profiled — the count
#     (bench/rows-bytes.ts) has MATVEC_R reading 8× the x̂ bytes of the split-K blocked GEMM at 16 rows.
# run: BUDGET=240 bash scripts/gpu-machine.sh bash scripts/gpu-s33e.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
BUDGET=${BUDGET:-240}
source scripts/gpu-steps.sh
B="--prompt 128 --batch-prompt 64 --gen 32 --reps 3 --batch 1,2,4,8,16,32,64 --decode-rows 0,16 --profile-batches 8"
step 30 node --test dist/test/backend/webgpu-matvec-rows.test.js
step 50 node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 $B
step 50 node dist/bench/webgpu.bench.js --presets mamba-130m --weights f32 $B
step 45 node dist/bench/webgpu.bench.js --presets mamba2-130m,mamba-130m --weights bf16 $B --no-profile
for G in 0 256; do
  step 25 env MAMBA_TS_WEBGPU_ROWS_GROUPS=$G node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 128 --batch-prompt 64 --gen 32 --reps 3 --batch 8,16 --decode-rows 8,16 --profile-batches 16
done
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|rc=|SKIP|===|^# (pass|fail)|not ok|GPU time per|µs each" $LOG | cut -c1-400 | tail -150
