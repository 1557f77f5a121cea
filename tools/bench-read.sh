#!/bin/sh
# Read throughput through a tpfs mount, next to reading the source file.
#
#   tools/bench-read.sh [BUILD_DIR] [WORK_DIR] [ROUNDS]
#
# Writes (once) a model with an F32 tensor of 1 GiB and a BF16 tensor of
# 1 GiB (2 GiB once served as float32), then for each round measures, with dd
# and 1 MiB reads, the served output bytes per second of:
#   cold         the source's pages dropped, a fresh mount (needs root)
#   warm source  the source in the page cache, a fresh mount: tpfs's own cost
#   warm mount   a second read of the same file: the kernel's page cache
# each next to dd of the source file in the same state, and np.load of both
# tensors. Prints figures and ratios; asserts nothing.
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
	"$gen" "$model" --quiet --tensor f32=f32:16384x16384 --tensor bf16=bf16:16384x32768
fi

can_drop=0
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/drop_caches ]; then can_drop=1; fi
drop() { [ $can_drop -eq 1 ] && sync && echo 3 > /proc/sys/vm/drop_caches || true; }
now() { date +%s.%N; }
# bytes/s of reading file $1 (from offset $2 bytes, default 0) as GB/s
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

printf '%-6s %-12s %10s %10s %10s %10s %8s %8s\n' round state "src GB/s" \
	"f32 GB/s" "bf16 GB/s" "" "f32/src" "bf16/src"
for r in $(seq 1 "$rounds"); do
	if [ $can_drop -eq 1 ]; then
		drop
		s=$(rate "$src")
		drop
		mount_fresh
		f=$(rate "$mnt/f32.npy")
		b=$(rate "$mnt/bf16.npy")
		printf '%-6s %-12s %10s %10s %10s %10s %8s %8s\n' "$r" cold "$s" "$f" "$b" "" \
			"$(ratio "$f" "$s")" "$(ratio "$b" "$s")"
	fi
	cat "$src" > /dev/null
	s=$(rate "$src")
	mount_fresh
	f=$(rate "$mnt/f32.npy")
	b=$(rate "$mnt/bf16.npy")
	printf '%-6s %-12s %10s %10s %10s %10s %8s %8s\n' "$r" "warm source" "$s" "$f" "$b" "" \
		"$(ratio "$f" "$s")" "$(ratio "$b" "$s")"
	f=$(rate "$mnt/f32.npy")
	b=$(rate "$mnt/bf16.npy")
	printf '%-6s %-12s %10s %10s %10s %10s %8s %8s\n' "$r" "warm mount" "$s" "$f" "$b" "" \
		"$(ratio "$f" "$s")" "$(ratio "$b" "$s")"
done
mount_fresh
/usr/bin/python3 - "$mnt" <<'EOF'
import sys, time
import numpy as np
mnt = sys.argv[1]
for name in ("f32", "bf16"):
    t = time.perf_counter()
    a = np.load("%s/%s.npy" % (mnt, name))
    dt = time.perf_counter() - t
    print("np.load %-5s %s %s: %.2f s, %.2f GB/s of float32" % (
        name, a.dtype, a.shape, dt, a.nbytes / dt / 1e9))
EOF
cat "$mnt/.tpfs/stats"
fusermount3 -u "$mnt"
[ $can_drop -eq 1 ] || echo "(not root: no cold rounds)"
