#!/bin/sh
# The whole workflow on the demo model, the way to try tpfs the first time:
# generate the model, mount it, list it, load every tensor, check the mount
# against `tpfs convert` output written to disk, unmount; with timings.
#
#   mount-examples/end_to_end.sh [WORK_DIR]
#
# Uses build/tpfs and build/tpfs-gen (or $TPFS and $TPFS_GEN) and a python3
# with NumPy ($PYTHON, default /usr/bin/python3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tpfs=${TPFS:-$here/../build/tpfs}
gen=${TPFS_GEN:-$here/../build/tpfs-gen}
python=${PYTHON:-/usr/bin/python3}
work=${1:-$(mktemp -d)}
mkdir -p "$work/mnt"
now() { date +%s.%N; }
step() {
	label=$1
	shift
	t0=$(now)
	"$@"
	t1=$(now)
	echo "$label $t0 $t1" | awk '{printf "-- %-28s %6.2f s\n", $1, $3 - $2}' >&2
}
cleanup() { mountpoint -q "$work/mnt" && fusermount3 -u "$work/mnt" || true; }
trap cleanup EXIT

[ -f "$work/model/model.safetensors" ] ||
	step generate "$gen" "$work/model" --preset demo --quiet
step mount "$tpfs" mount "$work/model" "$work/mnt"
ls -l "$work/mnt" | head -n 6
step list "$tpfs" ls "$work/model" > "$work/ls.txt"
tail -n 2 "$work/ls.txt"
step load_every_tensor "$python" "$here/load_jax.py" "$work/mnt" --numpy
step convert "$tpfs" convert "$work/model" "$work/out" > /dev/null
compare() {
	n=0
	for f in $(cd "$work/out" && find . -name '*.npy' -o -name config.json); do
		cmp -s "$work/out/$f" "$work/mnt/$f" || { echo "differs: $f" >&2; exit 1; }
		n=$((n + 1))
	done
	echo "$n files identical in the mount and the converted copy"
}
step compare compare
step unmount "$tpfs" umount "$work/mnt"
echo "done: $work"
