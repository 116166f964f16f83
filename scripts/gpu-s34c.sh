#!/bin/bash
# Issue 11, session 34, branch s34-batch: batched decode at 1–64 rows, the modes ALTERNATED (before, new, before, new)
# in one process per model, in priority order (a step past the budget is skipped; ≤ ~200 s with a warm build):
# (1) mamba2-130m f32, batch 1,2,4,8,16,32,64: before (decodeRows 0, decodeStateRows 1, batchDecode fused) against new
#     (decodeRows 'auto': MATVEC_R at 2–4 rows; decodeStateRows 4: the state update with 4 rows of a head per subgroup;
#     batchDecode 'fused2': the conv step inside in_proj's split-K reduce, 9+ rows), passes alternated, the 64-row step
#     profiled in every pass (per-kernel GPU ms: the first 64-row profile since session 24);
# (2) mamba-130m f32 the same for decodeRows and fused2 (its scan step has no P-row kernel);
# (3) the state rows alone at 64 rows, P 1, 2, 4, 8, 1 (mamba2-130m, profiled): which P, if any, to make the default;
# (4) the tests of the branch on the card (P-row kernel = P 1 and the CPU at 2–64 sequences; 'auto' routing; tiny model
#     batched = alone).
# Every pass checks batched tokens against batch 1 on the device and the first step's logits (CHECK FAILED otherwise).
# run: BUDGET=220 bash scripts/gpu-machine.sh bash scripts/gpu-s34c.sh   (SKIP_DIST=1 on a warm machine)
set -u
BUDGET=${BUDGET:-220}
source scripts/gpu-steps.sh
B='--weights f32 --prompt 128 --batch-prompt 64 --gen 32 --reps 3 --batch 1,2,4,8,16,32,64 --profile-batches 64'
step 75 node dist/bench/webgpu.bench.js --presets mamba2-130m $B --decode-rows 0,auto,0,auto --state-rows 1,4,1,4 --batch-decode fused,fused2,fused,fused2
step 60 node dist/bench/webgpu.bench.js --presets mamba-130m $B --decode-rows 0,auto,0,auto --batch-decode fused,fused2,fused,fused2
step 35 node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 128 --batch-prompt 64 --gen 64 --reps 2 --batch 64 --state-rows 1,2,4,8,1 --profile-batches 64
step 40 node --test dist/test/backend/webgpu-batch64.test.js
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "GPU time per decode step|^    (ssd_step_sg|matmul_blocked|splitk|splitk_conv|conv_step|rms_norm|scan_step|matvec)|batch (1|2|4|8|16|32|64) \[|FAIL|rc=|SKIP|===|^# (pass|fail)|not ok" $LOG | cut -c1-330 | tail -150
