#!/bin/bash
# The official-kernel anchor (../shared/tools/anchors/official_kernels_bench.py, carried as .anchors/) at the 2.8b shapes:
# the same script with Mamba-2 2.8b's (d_model 2560, 64 layers, d_inner 5120, 80 heads of 64, state 128) and Mamba-1
# 2.8b's (d_inner 5120, state 16, dt_rank 160) dimensions, written to /tmp and run there. Usage: bash scripts/gpu-anchor-2.8b.sh
set -eu
mkdir -p /tmp/anchor28
sed -e 's/^V, H, NL = 50280, 768, 24$/V, H, NL = 50280, 2560, 64/' \
    -e 's/I, NH, P, G, N, K = 1536, 24, 64, 1, 128, 4;/I, NH, P, G, N, K = 5120, 80, 64, 1, 128, 4;/' \
    -e 's/I1, N1, R = 1536, 16, 48$/I1, N1, R = 5120, 16, 160/' \
    -e 's/mamba2-130m/mamba2-2.8b/g; s/mamba-130m/mamba-2.8b/g' .anchors/official_kernels_bench.py > /tmp/anchor28/bench.py
for pat in 'V, H, NL = 50280, 2560, 64' 'I, NH, P, G, N, K = 5120, 80' 'I1, N1, R = 5120, 16, 160'; do
  grep -q "$pat" /tmp/anchor28/bench.py || { echo "gpu-anchor-2.8b: the anchor script changed (no '$pat' after the edit)"; exit 2; }
done
python3 /tmp/anchor28/bench.py "$(pwd)/.anchors"
