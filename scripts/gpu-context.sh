#!/bin/bash
# Issue 11 on a lent GPU (H200 for 64k x 32): decode tok/s and memory per sequence vs context (mamba2-130m vs llama-130m,
# f32 and bf16 KV caches), then the 2.8b shapes with q8/bf16/f32 weights. Logs in $OUT/all.log, the plot in $OUT/ctx/.
# run: BUDGET=540 bash scripts/gpu-machine.sh bash scripts/gpu-context.sh   (carry as docs/gpu-machine.md says)
set -u
T0=$(date +%s); BUDGET=${BUDGET:-540}
LOG=$OUT/all.log
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
GIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1 | awk '{printf "%d", $1/1024 - 3}')
step 330 node dist/bench/webgpu-context.bench.js --models mamba2-130m,llama-130m --contexts 1024,4096,16384,65536 --batch 1,32 --kv-cache f32,bf16 --max-seconds 4 --gpu-memory-gib $GIB --out $OUT/ctx
for a in mamba mamba2; do for d in q8 bf16 f32; do
  step 120 node dist/src/cli/main.js bench --backend webgpu --arch $a --size 2.8b --dtype $d --prompt 512 --gen 32 --reps 2
done; done
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|GiB|MiB|ratio|rc=|SKIP|===|\|" $LOG | cut -c1-220 | tail -120
