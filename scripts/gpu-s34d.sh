#!/bin/bash
# Issue 11, session 34 (branch s34-big): 2.8b decode against the official CUDA-graph decode (156 fp32 / 200 bf16 tok/s
# mamba2-2.8b, 155 / 193 mamba-2.8b). Ours bf16 (v1): mamba2-2.8b 156–172, mamba-2.8b 147–166; profiled, the step is
# matvec_bw 129 × 43 µs + mamba2_step 64 × 15.9 µs (Mamba-1: mamba1_xproj 64 × 21.5, mamba1_scan 64 × 15.3).
# In priority order (a step past the budget is skipped):
# (1) the stream table at the 2.8b shapes, bf16, one row, from HBM (weights rotated over 256 MiB of copies, as this
#     bench always did): v1 (R2U4) vs the guarded last round 'g' (MATVEC_BW variant g) at several R·U, vs the probe;
# (2) mamba2-2.8b bf16 decode, the streaming step kernels ('-s': MAMBA2_STEP_S q4t32) on and off, alternated, v1 first
#     and last, and with MATVEC_BW 'gf' (guarded last round, the norm prologue's loads 4 at a time) under it; every
#     set's logits and tokens checked against v1 by the bench;
# (3) mamba-2.8b bf16 the same ('-s': MAMBA1_XPROJ_SK, x_proj split over K; MAMBA1_SCAN_S adds its partials, its
#     loads first, 3 barriers);
# (4) 'mega-r32-o8' (the NVIDIA default since session 34: one dispatch a step, no gaps between kernels) at
#     mamba2-2.8b beside v1;
# (5) the same table with one copy re-read (--rotate-mb 0: L2 may hold it) and with 4 GiB of copies (a 2.8b step's
#     page span) — does the isolated rate depend on either? (the model runs the matvec at ~0.95 TB/s, the table at ~2);
#     in_proj with its RMSNorm folded in (--context norm) and out_proj with the gated norm (--context gated), as the
#     model runs them;
# (6) MAMBA2_STEP_S's lanes: Q 16 (q16t8, 160 workgroups) and Q 2 (q2t64) on 16 layers, profiled step per kernel;
# (7) the f32 table at the 2.8b shapes (MATVEC_V: v1 = U 4 there, U 2 / 8, split-K) — f32 decode is 122.6 tok/s
#     (session 31) against the fp32 anchor's 156.
# run: BUDGET=160 bash scripts/gpu-machine.sh bash scripts/gpu-s34d.sh
set -u
BUDGET=${BUDGET:-160}
source scripts/gpu-steps.sh
S28=2.8b.in_proj,2.8b.out_proj
step 30 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1 --shapes $S28 \
  --kernels v1,v1-b-r2u4g,v1-b-r4u2,v1-b-r4u2g,v1-b-r4u4g,v1-b-r1u8g,v1-b-r2u4s2g --budget-s 25 --json ${OUT:-/tmp}/stream-2.8b.json
step 55 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-s,v1-b-r2u4gf-s,v1
step 45 node dist/bench/decode-kernels.bench.js --presets mamba-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-s,v1
step 35 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,mega-r32-o8
step 15 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1 --shapes $S28 --kernels v1 --rotate-mb 0 --budget-s 10
step 20 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1 --shapes $S28 --kernels v1,v1-b-r2u4g --rotate-mb 4096 --budget-s 15
step 15 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1 --shapes 2.8b.in_proj --kernels v1,v1-b-r2u4g,v1-b-r2u4gf --context norm --budget-s 10
step 15 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1 --shapes 2.8b.out_proj --kernels v1,v1-b-r2u4g,v1-b-r2u4gf,v1-b-r4u2s4gf --context gated --budget-s 10
for Q in 16 2; do
  step 25 env MAMBA_TS_WEBGPU_STEP_Q=$Q node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --layers 16 --gen 32 --reps 3 --decode v1,v1-s
done
step 15 node dist/bench/webgpu-stream.bench.js --parts matvec --weights f32 --rows 1 --shapes $S28 --kernels v1,v1-u2,v1-u8,v1-k4 --budget-s 10
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|not ok|profiled step|2\.8b\.(in|out)_proj|NOT RUN|weight copies|one copy" $LOG | cut -c1-400 | tail -120
