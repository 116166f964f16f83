#!/bin/bash
# Session 28 (issue 11): q8 prefill through 16-byte tile loads — the GEMMs alone (f32 / q8 vector / q8 scalar) and the
# prefill 2048 end to end with f32 and q8 (q8 with each tile load, interleaved and profiled), then the q8 tests on the card.
# carry [".gl", ".carry", ".exp/dist.tar.xz"]; run as: BUDGET=420 bash scripts/gpu-machine.sh bash scripts/gpu-q8gemm.sh
set -u
T0=$(date +%s); BUDGET=${BUDGET:-420}
LOG=${OUT:-/tmp}/q8gemm.log
tar xJf .exp/dist.tar.xz
export MAMBA_TS_REQUIRE_WEBGPU=1
step() { # step SECONDS CMD...
  local t=$1; shift; local el=$(( $(date +%s) - T0 )); local l=$(( BUDGET - el ))
  if [ $l -lt 15 ]; then echo "=== SKIP (budget) $*" | tee -a $LOG; return; fi
  [ $t -gt $l ] && t=$l
  echo "=== [t=${el}s] $* (limit ${t}s)" | tee -a $LOG
  timeout $t "$@" >> $LOG 2>&1; local rc=$?
  echo "=== rc=$rc after $(( $(date +%s) - T0 - el ))s" | tee -a $LOG
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >> $LOG
step 100 node dist/bench/gemm.bench.js --m 2048 --sizes 130m --weights f32,q8 --q8-tiles vector,scalar --kernels tiled,blocked --reps 20
step 150 node dist/bench/webgpu.bench.js --presets mamba-130m,mamba2-130m --weights f32,q8 --q8-tiles vector,scalar --prompt 2048 --gen 32 --reps 3 --batch 1
step 60 node --test dist/test/backend/webgpu-q8.test.js
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|TFLOP|CHECK|FAIL|GPU time|ms  \(|rc=|SKIP|===|^# (pass|fail)" $LOG | cut -c1-230 | tail -120
