#!/bin/sh
# The first thing to try: installs what is missing, builds tpfs, writes the
# demo model (a 38M-parameter GPT-OSS-shaped model) to demo/model, mounts it
# on demo/mnt, lists it and loads a tensor with NumPy. Leaves it mounted.
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
sh tools/fresh-build-dir.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
	-DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
[ -f demo/model/model.safetensors ] || ./build/tpfs-gen demo/model --preset demo
mkdir -p demo/mnt
if mountpoint -q demo/mnt || ! ls demo/mnt >/dev/null 2>&1; then
	fusermount3 -u demo/mnt
fi
./build/tpfs mount demo/model demo/mnt
echo
echo "$ ls -l demo/mnt | head"
ls -l demo/mnt | head
echo
echo "$ /usr/bin/python3 -c \"import numpy as np; w = np.load('demo/mnt/model.embed_tokens.weight.npy'); ...\""
/usr/bin/python3 -c "
import numpy as np
w = np.load('demo/mnt/model.embed_tokens.weight.npy')
print(w.dtype, w.shape, 'std %.4f' % w.std())
print(w[:2, :6])"
echo
echo "demo/mnt stays mounted; unmount it with: ./build/tpfs umount demo/mnt"
