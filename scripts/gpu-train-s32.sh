#!/bin/bash
# Issue 16, session 32: the attention rows of induction heads (Mamba paper Table 11: attention with RoPE trained at 256
# fails beyond ~2× its training length). Session 24's Llama (d64, lr 1e-3, 16 runs sharing the card) had not learned the
# task in 2,503 steps; here three Llamas alone on the card: d64 at lr 1e-3 and 2e-3, d128 (2 heads of 64) at 1e-3,
# a 3,000-step cosine each (resumable), then each evaluated from 2^6 to 2^14.
# run: SKIP_DIST=1 BUDGET=400 bash scripts/gpu-machine.sh bash scripts/gpu-train-s32.sh
set -u
TRAIN_MARGIN=110; PACK=train32; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
IH="--preset induction-heads --arch llama --batch 32 --accum 1 --steps 3000 --warmup 100 --eval-every 250 --save-every 250 --eval-batches 4 --eval-lengths 256"
RUNS="ih-llama-d64-lr1e3 ih-llama-d64-lr2e3 ih-llama-d128-lr1e3"
train ih-llama-d64-lr1e3 $IH --head-dim 32 --lr 1e-3 &
train ih-llama-d64-lr2e3 $IH --head-dim 32 --lr 2e-3 &
train ih-llama-d128-lr1e3 $IH --hidden 128 --head-dim 64 --lr 1e-3 &
wait
echo "train done at $(( $(date +%s) - T0 ))s"
EVAL_S=80 EVAL_ARGS="--eval-batches 8 --eval-lengths 64,128,256,512,1024,2048,4096,8192,16384" evals $RUNS
pack $RUNS
summary $RUNS
