#!/bin/bash
# Issue 11, session 30's last device call: (1) the official 130m anchors; (2) batch-1 decode with the new defaults
# (Dawn toggles on, 4 loads in flight for K ≥ 2048) against the toggles off, f32/bf16, same call as the anchors;
# (3) where mamba2-2.8b's decode step goes (profiled step, f32); (4) the GEMM sweep (bench/gemm-sweep.bench.ts) and
# prefill 2048 end to end with its tuned table vs the default; (5) parity on the card with the new defaults.
# knobs: SWEEP_S, WITH_28B=0, E2E_ARCHS, PARITY_MORE= (fewer parity files)
# run: BUDGET=400 bash scripts/gpu-machine.sh bash scripts/gpu-s30.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .anchors)
set -u
BUDGET=${BUDGET:-400}
SWEEP_S=${SWEEP_S:-85}
source scripts/gpu-steps.sh
OUT=${OUT:-/tmp}
step ${ANCHOR_S:-55} python3 .anchors/official_kernels_bench.py .anchors
DK="node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16 --gen 128 --reps 3 --decode v1"
step 25 $DK
step 25 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=none $DK
# the CLI bench's decode after a 2048-token prefill (fresh state per rep: its first step unrecorded): 16 vs 128 steps
step 25 node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --prompt 2048 --gen 128 --reps 3
[ "${WITH_28B:-1}" = 1 ] && step 45 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights f32 --gen 32 --reps 2 --decode v1
[ "$SWEEP_S" -gt 0 ] && step $((SWEEP_S + 20)) node dist/bench/gemm-sweep.bench.js --budget-s $SWEEP_S --m 2048 --sizes 130m,llama --json $OUT/gemm-sweep.json
TUNED=$OUT/gemm-sweep.json
[ "$SWEEP_S" -gt 0 ] || E2E_ARCHS=" "
for a in ${E2E_ARCHS:-mamba2 llama}; do
  step 20 node dist/src/cli/main.js bench --backend webgpu --arch $a --prompt 2048 --gen 16 --reps 7
  [ -s $TUNED ] && step 20 env MAMBA_TS_WEBGPU_GEMM_TUNED=$TUNED node dist/src/cli/main.js bench --backend webgpu --arch $a --prompt 2048 --gen 16 --reps 7
done
step 45 node --test dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-decode-candidates.test.js ${PARITY_MORE-dist/test/backend/webgpu-submit.test.js dist/test/backend/webgpu-toggles.test.js dist/test/backend/webgpu-gemm-variants.test.js}
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|tuned table|configurations run|→|ms/token|µs/token|prefill 2048|decode 16" $LOG | grep -v "profiled step" | cut -c1-220 | tail -110
