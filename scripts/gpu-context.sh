#!/bin/bash
# Issue 11 on a lent GPU (H200 for 64k x 32): decode tok/s and memory per sequence vs context (mamba2-130m vs llama-130m,
# f32 and bf16 KV caches), then the 2.8b shapes with q8/bf16/f32 weights. Logs in $OUT/all.log, the plot in $OUT/ctx/.
# run: BUDGET=540 bash scripts/gpu-machine.sh bash scripts/gpu-context.sh   (carry as docs/gpu-machine.md says)
set -u
BUDGET=${BUDGET:-540}
source scripts/gpu-steps.sh
GIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1 | awk '{printf "%d", $1/1024 - 3}')
step 330 node dist/bench/webgpu-context.bench.js --models mamba2-130m,llama-130m --contexts 1024,4096,16384,65536 --batch 1,32 --kv-cache f32,bf16 --max-seconds 4 --gpu-memory-gib $GIB --out $OUT/ctx
for d in q8 bf16 f32; do for a in mamba2 mamba; do
  step 120 node dist/src/cli/main.js bench --backend webgpu --arch $a --size 2.8b --dtype $d --prompt 512 --gen 32 --reps 2
done; done
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|GiB|MiB|ratio|rc=|SKIP|===|\|" $LOG | cut -c1-220 | tail -120
