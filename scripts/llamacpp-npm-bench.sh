#!/usr/bin/env bash
# llama.cpp's own llama-bench on the prebuilt CPU libraries of the npm package node-llama-cpp (issue 18), for
# `--llama-bench PATH` of bench/wasm-matrix.bench.ts and bench/wasm-context.bench.ts where llama.cpp cannot be fetched
# or built (its repository is over the fetch limit here). node-llama-cpp ships llama.cpp's source as a git bundle
# (llama/gitRelease.bundle, the release its binaries were built from) and the built libraries (libllama, libggml*,
# one libggml-cpu-<variant>.so per CPU family; ggml loads the best one for this CPU); only llama-bench's two source
# files are compiled here (g++, a few seconds of CPU), against those headers and linked to those libraries.
# node-llama-cpp is NOT a dependency of mamba-ts: it is installed outside the repository.
#
#   mkdir -p /tmp/llnpm && cd /tmp/llnpm && npm init -y && npm install node-llama-cpp@3.22.1
#   bash scripts/llamacpp-npm-bench.sh /tmp/llnpm /tmp/llbench-npm      # -> /tmp/llbench-npm/llama-bench
#   node dist/bench/wasm-matrix.bench.js --llama-bench /tmp/llbench-npm/llama-bench --llama-models /tmp/bench-gguf …
set -euo pipefail
NPM_DIR=${1:?usage: llamacpp-npm-bench.sh NPM_DIR OUT_DIR (NPM_DIR: where node-llama-cpp is installed)}
OUT=${2:?usage: llamacpp-npm-bench.sh NPM_DIR OUT_DIR}
PKG=$NPM_DIR/node_modules/node-llama-cpp
BINS=$NPM_DIR/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
[ -f "$PKG/llama/gitRelease.bundle" ] || { echo "no $PKG/llama/gitRelease.bundle: install node-llama-cpp in $NPM_DIR first (npm install node-llama-cpp@3.22.1)" >&2; exit 1; }
[ -f "$BINS/libllama-common.so" ] || { echo "no prebuilt linux-x64 CPU libraries in $BINS (@node-llama-cpp/linux-x64)" >&2; exit 1; }
command -v g++ >/dev/null || { echo "g++ is needed to compile llama-bench" >&2; exit 1; }
mkdir -p "$OUT"
SRC=$OUT/src
[ -d "$SRC/.git" ] || git -c advice.detachedHead=false clone -q "$PKG/llama/gitRelease.bundle" "$SRC"
LLAMA=$(ls "$BINS" | grep -m1 '^libllama\.v.*\.so$')
GGML=$(ls "$BINS" | grep -m1 '^libggml\.v.*\.so$')
# the libraries next to the binary: ggml looks for its libggml-cpu-*.so variants in the executable's folder
ln -sf "$BINS"/*.so "$OUT"/
g++ -O2 -DNDEBUG -std=c++17 -DGGML_SHARED -DLLAMA_SHARED \
  -I "$SRC/include" -I "$SRC/ggml/include" -I "$SRC/common" -I "$SRC/vendor" -I "$SRC/tools/llama-bench" \
  "$SRC/tools/llama-bench/llama-bench.cpp" "$SRC/tools/llama-bench/main.cpp" -o "$OUT/llama-bench" \
  -L "$OUT" -l:libllama-common.so -l:"$LLAMA" -l:"$GGML" -l:libggml-base.so -lpthread -Wl,-rpath,'$ORIGIN'
echo "built $OUT/llama-bench (llama.cpp source $(git -C "$SRC" rev-parse --short HEAD) from node-llama-cpp $(node -p "require('$PKG/package.json').version"), libraries $BINS)"
