#!/bin/sh
# A look around a tpfs mount: the files, the manifest, and one tensor's card
# with its statistics and first values.
#
#   mount-examples/browse.sh MNT [TENSOR_PATH]
#
# TENSOR_PATH is a .npy path under MNT (default: the first tensor listed).
set -eu
mnt=${1:?usage: browse.sh MNT [TENSOR_PATH]}
python=${PYTHON:-python3}
echo "== ls -l $mnt"
ls -l "$mnt" | head -n 12
echo "== manifest.json (first lines)"
"$python" -m json.tool "$mnt/manifest.json" | head -n 30
tensor=${2:-$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['tensors'][0]['path'])" "$mnt/manifest.json")}
echo "== $mnt/.tpfs/info/${tensor%.npy}.txt"
cat "$mnt/.tpfs/info/${tensor%.npy}.txt"
echo "== .tpfs/stats"
cat "$mnt/.tpfs/stats"
