#!/bin/bash
# Issue 11, session 34, call 1 (build of 8410af2): in priority order (a step past the budget is skipped):
# (1) the anchors; (2) 'mega-r32-o8' with the LM head after the kernel (session 33's default change, untimed) beside
# v1 and the in-kernel head ('-h'), v1 timed first and last (v1 moved 10–30% between calls in session 33);
# (3) Mamba-1 the same; (4) PyTorch SDPA (torch_bench) and our llama-130m prefill/decode in the same call;
# (5) the CLI's wall time (leanHost on/off) — the llama decode gap; (6) the 2.8b anchor and mamba2-2.8b bf16;
# (7) batched decode at 2–16 rows with the modes alternated.
# run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s34.sh
set -u
BUDGET=${BUDGET:-560}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 60 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-r32-o8,mega-r32-o8-h,mega,v1
step 50 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-r32-o8,mega,v1
step 70 bash -c 'mkdir -p /tmp/tb && cp .anchors/torch_bench.py /tmp/tb && cd /tmp/tb && python3 torch_bench.py cuda'
step 50 node dist/bench/webgpu.bench.js --presets llama-130m --weights f32 --prompt 2048 --gen 128 --reps 3 --no-profile
step 70 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths cli --lean 1,0 --reps 5 --gen 16 --gpu-ms
step 45 env MAMBA_TS_WEBGPU_TRACE=1 node dist/bench/webgpu-first-step.js --preset llama-130m --prompt 2048 --gen 16 --reps 5 --dispose
step 90 bash scripts/gpu-anchor-2.8b.sh
step 50 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-b-r1u8
for R in 0 16 0 16; do
  step 30 node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 128 --batch-prompt 64 --gen 32 --reps 3 --batch 1,2,4,8,16 --decode-rows $R --no-profile
done
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "median|GPU [0-9.]+ ms|WebGPU calls|^rep|tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|MEGA|cuda |NOT RUN" $LOG | cut -c1-400 | tail -170
