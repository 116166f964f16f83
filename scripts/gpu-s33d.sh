#!/bin/bash
# Issue 11, session 33: the bf16 decode matvec at the memory's rate. MATVEC_BW (kernels/matvec_bf16.ts, decodeKernels
# 'v1-b…': R·U vec4<u32> loads in flight a lane, shift/mask unpacking on vectors, x̂ staged even/odd and reused across
# a lane's R rows, subgroupAdd, split-K where the rows are few) against MATVEC_V ('v1' = 4 loads in flight for bf16
# since session 32, 'v1-u4', 'v1-k4' split-K) and the read probe over the same bytes. Session 32: mamba2-2.8b bf16
# 141.3 tok/s (matvec_v 6,118 µs a step: ~0.87 TB/s; the probe reads 3.09). The rule `matvecBwPlan` picks 'v1-b''s
# tunables (2.8b in_proj r4u2, out_proj r1u8, 130m in_proj r1u2, out_proj r1u2 in 3 slices; first loads before the
# prologue), the named ones beside it ('-n': first loads after the prologue).
# (1) stream bench bf16, 1 and 2 rows; (2) decode mamba2-2.8b bf16; (3) mamba2-130m bf16; (4) mamba-2.8b bf16;
# (5) stream bench q8 (v1-b* run MATVEC_V for q8: not listed there).
# Every set's first logits and chained tokens are checked against v1's by decode-kernels.bench.
# run: BUDGET=300 bash scripts/gpu-machine.sh bash scripts/gpu-s33d.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
BUDGET=${BUDGET:-300}
source scripts/gpu-steps.sh
BW=${BW_SETS:-v1-b,v1-b-n,v1-b-r4u4,v1-b-r2u4,v1-b-r1u8,v1-b-r4u2s4,v1-b-r1u4s2,v1-b-r1u8s1}
# in order of need (a step past the budget is skipped): bf16 stream table, mamba2-2.8b, mamba2-130m, mamba-2.8b, q8 table
step 85 node dist/bench/webgpu-stream.bench.js --parts matvec --weights bf16 --rows-packed 1,2 \
  --shapes 2.8b.in_proj,2.8b.out_proj,130m.in_proj,130m.out_proj,130m.lm_head --kernels v1,v1-u4,v1-k4,$BW \
  --budget-s 75 --json ${OUT:-/tmp}/stream-bf16.json
step 75 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 \
  --decode v1,v1-b,v1-b-n,v1-b-r2u4,v1-b-r1u8
step 40 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights bf16 --gen 128 --reps 3 \
  --decode v1,v1-b,v1-b-r1u4,v1-b-r1u8s1
step 60 node dist/bench/decode-kernels.bench.js --presets mamba-2.8b --weights bf16 --gen 32 --reps 3 \
  --decode v1,v1-b,v1-b-r2u4
step 25 node dist/bench/webgpu-stream.bench.js --parts matvec --weights q8 --rows-packed 1,2 \
  --shapes 2.8b.in_proj,2.8b.out_proj,130m.in_proj,130m.out_proj --kernels v1,v1-u4,v2-r1w128l4n \
  --budget-s 18 --json ${OUT:-/tmp}/stream-q8.json
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|not ok|profiled step|probe|matvec_bw|matvec_v|NOT RUN" $LOG | cut -c1-400 | tail -150
