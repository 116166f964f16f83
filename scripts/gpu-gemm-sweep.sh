#!/bin/bash
# Issue 11, session 30: the f32 prefill GEMM. (1) bench/gemm-sweep.bench.ts within SWEEP_S seconds (default 110):
# tiles, BKs, code flags and K-splits of the blocked kernel on the 130m models' and llama-130m's prefill GEMMs at
# M = 2048, ranked against the tiled kernel, its JSON (with the tuned table) in $OUT/gemm-sweep.json; (2) the flags'
# correctness test on the card; (3) prefill 2048 end to end, default vs the sweep's table
# (MAMBA_TS_WEBGPU_GEMM_TUNED=$OUT/gemm-sweep.json), interleaved, mamba2 / llama / mamba, each line's JSON in
# $OUT/e2e-<arch>-<default|tuned>-<round>.json; (4) with time left, one profiled prefill of mamba2 each way
# (the GEMMs' in-model times beside the sweep's).
# run: BUDGET=480 bash scripts/gpu-machine.sh bash scripts/gpu-gemm-sweep.sh  (carry as docs/gpu-machine.md)
# knobs: SWEEP_S (the sweep's seconds), SWEEP_ARGS (more sweep options, e.g. "--configs 128x128k16t8x16_w8
# --phases 1,2"), E2E_ARCHS (default "mamba2 llama mamba"). The sweep's JSON is rewritten while it runs, so a cut
# leaves a usable table.
set -u
BUDGET=${BUDGET:-420}
SWEEP_S=${SWEEP_S:-110}
SWEEP_ARGS=${SWEEP_ARGS:-}
E2E_ARCHS=${E2E_ARCHS:-mamba2 llama mamba}
source scripts/gpu-steps.sh
OUT=${OUT:-/tmp}
step $((SWEEP_S + 25)) node dist/bench/gemm-sweep.bench.js --budget-s $SWEEP_S --m 2048 --sizes 130m,llama --json $OUT/gemm-sweep.json $SWEEP_ARGS
TUNED=$OUT/gemm-sweep.json
[ -s $TUNED ] || { echo "=== no sweep JSON: end-to-end runs use the default only" | tee -a $LOG; TUNED=; }
step 40 node --test dist/test/backend/webgpu-gemm-variants.test.js
# e2e ARCH MODE ROUND: one bench line, its JSON (the last line) kept
e2e() {
  local a=$1 m=$2 r=$3 env=()
  [ "$m" = tuned ] && env=(env MAMBA_TS_WEBGPU_GEMM_TUNED=$TUNED)
  [ "$m" = tuned ] && [ -z "$TUNED" ] && return
  step 30 bash -c "${env[*]} node dist/src/cli/main.js bench --backend webgpu --arch $a --prompt 2048 --gen 16 --reps 5 --json | tee $OUT/e2e-$a-$m-$r.log | tail -1 > $OUT/e2e-$a-$m-$r.json; cat $OUT/e2e-$a-$m-$r.log"
}
for a in $E2E_ARCHS; do
  for r in 1 2; do
    e2e $a default $r
    e2e $a tuned $r
  done
done
step 40 node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --prompt 2048 --gen 4 --reps 1 --profile
[ -n "$TUNED" ] && step 40 env MAMBA_TS_WEBGPU_GEMM_TUNED=$TUNED node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --prompt 2048 --gen 4 --reps 1 --profile
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|FAILED|→|tuned table|configurations run|rc=|SKIP|===|^# (pass|fail)|not ok|matmul" $LOG | cut -c1-220 | tail -120
