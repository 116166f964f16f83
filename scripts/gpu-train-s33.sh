#!/bin/bash
# Issue 16 follow-up: the induction-heads attention rows with a long schedule. Session 32's Llamas (d64 at lr 1e-3 /
# 2e-3, d128 at 1e-3; a 3,000-step cosine) stayed at chance after 1.4–2.4k steps where the Mamba was at 100% by 2k;
# here two d64 Llamas on a 20,000-step cosine (resumable: run the same script again on a warm machine, or with
# --resume on a fresh one after unpacking the runs), evaluated to 2^14 when they stop.
# run: BUDGET=480 bash scripts/gpu-machine.sh bash scripts/gpu-train-s33.sh   (SKIP_DIST=1 on a warm machine)
set -u
TRAIN_MARGIN=110; PACK=train33; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
IH="--preset induction-heads --arch llama --head-dim 32 --batch 32 --accum 1 --steps 20000 --warmup 200 --eval-every 500 --save-every 500 --eval-batches 4 --eval-lengths 256"
RUNS="ih-llama-d64-lr1e3-20k ih-llama-d64-lr5e4-20k"
R=""; [ -d runs/ih-llama-d64-lr1e3-20k ] && R="--resume"
train ih-llama-d64-lr1e3-20k $IH --lr 1e-3 $R &
train ih-llama-d64-lr5e4-20k $IH --lr 5e-4 $R &
wait
echo "train done at $(( $(date +%s) - T0 ))s"
EVAL_S=80 EVAL_ARGS="--eval-batches 4 --eval-lengths 64,128,256,512,1024,2048,4096,8192,16384" evals $RUNS
pack $RUNS
summary $RUNS
