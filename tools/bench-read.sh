#!/bin/sh
# Read throughput through a tpfs mount, next to reading the source file.
#
#   tools/bench-read.sh [BUILD_DIR] [WORK_DIR] [ROUNDS]
#
# Writes (once) a model with an F32 tensor of 1 GiB, a BF16 tensor of 1 GiB
# (2 GiB once served as float32) and an MXFP4 pair shaped like one GPT-OSS
# gate_up_proj (32 x 5760 x 2880 values: 282 MB stored, 2.1 GB served as
# float32), then for each round measures, with dd
# and 1 MiB reads, the served output bytes per second of:
#   cold         the source's pages dropped, a fresh mount (needs root)
#   warm source  the source in the page cache, a fresh mount: tpfs's own cost
#   warm mount   a second read of the same file: the kernel's page cache
# each next to dd of the source file (for "warm mount" rows: the warm
# source's rate again), and np.load of the three tensors. Prints figures and
# ratios; asserts nothing.
#
# The cold rounds drop the whole machine's page cache (as root: sync; echo 3
# > /proc/sys/vm/drop_caches); set TPFS_BENCH_NO_DROP=1 to skip them.
set -eu
build=${1:-build}
work=${2:-/tmp/tpfs-bench}
rounds=${3:-3}
tpfs=$build/tpfs
gen=$build/tpfs-gen
model=$work/model
mnt=$work/mnt
src=$model/model.safetensors
mkdir -p "$mnt"
if [ ! -f "$src" ]; then
	"$gen" "$model" --quiet --tensor f32=f32:16384x16384 \
		--tensor bf16=bf16:16384x32768 --tensor mxfp4=mxfp4:32x5760x2880
fi

can_drop=0
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/drop_caches ] &&
	[ -z "${TPFS_BENCH_NO_DROP:-}" ]; then
	can_drop=1
	echo "(cold rounds drop the page cache; TPFS_BENCH_NO_DROP=1 skips them)"
fi
drop() { [ $can_drop -eq 1 ] && sync && echo 3 > /proc/sys/vm/drop_caches || true; }
now() { date +%s.%N; }
# GB/s of reading file $1 from start to end with 1 MiB reads
rate() {
	size=$(stat -c %s "$1")
	t0=$(now)
	dd if="$1" of=/dev/null bs=1M status=none
	t1=$(now)
	echo "$size $t0 $t1" | awk '{printf "%.2f", $1 / ($3 - $2) / 1e9}'
}
mount_fresh() {
	if mountpoint -q "$mnt"; then fusermount3 -u "$mnt"; fi
	"$tpfs" mount "$model" "$mnt"
}
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "-" }'; }
# One row: the three tensors read through the mount, next to the source.
measure() {
	f=$(rate "$mnt/f32.npy")
	b=$(rate "$mnt/bf16.npy")
	x=$(rate "$mnt/mxfp4.npy")
	row "$1" "$2" "$s" "$f" "$b" "$x" "$(ratio "$f" "$s")" "$(ratio "$b" "$s")" \
		"$(ratio "$x" "$s")"
}

row() {
	printf '%-6s %-12s %9s %9s %10s %11s %8s %9s %10s\n' "$@"
}
row round state "src GB/s" "f32 GB/s" "bf16 GB/s" "mxfp4 GB/s" f32/src bf16/src mxfp4/src
for r in $(seq 1 "$rounds"); do
	if [ $can_drop -eq 1 ]; then
		drop
		s=$(rate "$src")
		drop
		mount_fresh
		measure "$r" cold
	fi
	cat "$src" > /dev/null
	s=$(rate "$src")
	mount_fresh
	measure "$r" "warm source"
	measure "$r" "warm mount"
done
mount_fresh
/usr/bin/python3 - "$mnt" <<'EOF'
import sys, time
import numpy as np
mnt = sys.argv[1]
for name in ("f32", "bf16", "mxfp4"):
    t = time.perf_counter()
    a = np.load("%s/%s.npy" % (mnt, name))
    dt = time.perf_counter() - t
    print("np.load %-5s %s %s: %.2f s, %.2f GB/s of float32" % (
        name, a.dtype, a.shape, dt, a.nbytes / dt / 1e9))
EOF
cat "$mnt/.tpfs/stats"
fusermount3 -u "$mnt"
[ $can_drop -eq 1 ] || echo "(no cold rounds: not root, or TPFS_BENCH_NO_DROP set)"
