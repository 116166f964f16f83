#!/bin/bash
# Node + WebGPU (Dawn) on a lent NVIDIA machine that has the driver but no Node.js, no Vulkan loader and no
# network, then a command. Run from the repository root there; see docs/gpu-machine.md for the folders it
# expects (all git-ignored, carried along with the call):
#   .gl/     the .deb files of libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 (amd64)
#   .carry/  node.xz (xz of this machine's node binary) and nm/ (node_modules: webgpu with dist/linux-x64/dawn.node.xz,
#            @huggingface/tokenizers)
#   dist/    the build (npm run build)
# Usage: bash scripts/gpu-machine.sh COMMAND...   (COMMAND sees $NODE and has node on its PATH)
set -eu
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json XDG_RUNTIME_DIR=/tmp
unxz_py() { python3 -c "import lzma,shutil,sys;shutil.copyfileobj(lzma.open(sys.argv[1]),open(sys.argv[2],'wb'))" "$1" "$2"; }
mkdir -p /tmp/nodebin && unxz_py .carry/node.xz /tmp/nodebin/node && chmod +x /tmp/nodebin/node
mkdir -p node_modules && cp -r .carry/nm/. node_modules/
find node_modules/webgpu -name 'dawn.node.xz' | while read -r f; do unxz_py "$f" "${f%.xz}"; done
export NODE=/tmp/nodebin/node PATH=/tmp/nodebin:$PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$@"
