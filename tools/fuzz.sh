#!/bin/sh
# Runs the libFuzzer targets (clang), each for the same number of seconds:
#   tools/fuzz.sh [SECONDS]        (default 30 a target)
#   fuzz_safetensors  the Safetensors header and index parsers; seeds: every
#                     real file in ../shared/realdata and a small header
#   fuzz_options      the -o option parser, the mount's own words included
#   fuzz_names        tensor names becoming paths: on a tree alone, and as a
#                     model folder with two shards, a subfolder, passed-through
#                     files, MXFP4 pairs and by_file
# Prints one line a target: runs, rate, coverage. Each target keeps its
# corpus in build-fuzz/corpus-TARGET (seeded here each time) and its log in
# build-fuzz/TARGET.log; a crashing input is left in build-fuzz/ as a crash-*
# file (build-fuzz/TARGET FILE runs it again and says which check failed).
# Exits 1 if any target failed.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-30}
targets="fuzz_safetensors fuzz_options fuzz_names"
sh tools/fresh-build-dir.sh build-fuzz
CC=clang cmake -S . -B build-fuzz -DTPFS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
# shellcheck disable=SC2086
cmake --build build-fuzz --target $targets -j "$(nproc)" >/dev/null

# n copies of s
rep() {
	r= i=0
	while [ "$i" -lt "$1" ]; do r=$r$2; i=$((i + 1)); done
	printf '%s' "$r"
}
# seed DIR NAME FORMAT [ARG...]: one seed input, written by printf
seed() {
	d=$1 n=$2
	shift 2
	# shellcheck disable=SC2059
	printf "$@" > "$d/$n"
}

c=build-fuzz/corpus-fuzz_safetensors
mkdir -p "$c"
for f in ../shared/realdata/*/*.safetensors ../shared/realdata/*/*.json; do
	[ -f "$f" ] && cp "$f" "$c/$(basename "$(dirname "$f")")-$(basename "$f")"
done
seed "$c" empty '\002\000\000\000\000\000\000\000{}'

c=build-fuzz/corpus-fuzz_options
mkdir -p "$c"
seed "$c" sizes 'cache_size=512M,block_size=64K'
seed "$c" units 'cache_size=1.5GiB,block_size=64MiB,dtype=auto'
seed "$c" types 'bf16=raw,fp8=f32,mxfp4=both,by_file'
seed "$c" dtype 'dtype=f16,mxfp4=both'
seed "$c" conflict 'dtype=f32,bf16=f16'
seed "$c" bad-block 'block_size=3M'
seed "$c" fstab 'ro,nofail,allow_other,cache_size=1G,x-systemd.automount,comment=tpfs'
seed "$c" kernel 'nodev,nosuid,noexec,dev,suid,exec,atime,noatime,sync,async,dirsync,allow_root,auto_unmount'

# fuzz_names inputs (tests/fuzz_names.c): a flags byte (1: by_file,
# 2: mxfp4=raw, 4: mxfp4=both), then records joined by NUL bytes, each a tag
# and a name. Tags: \010 tensor in shard 0, \011 in shard 1, \012 in
# sub/model.safetensors, \013 MXFP4 pair (\033: blocks in shard 1, \053:
# scales in shard 1, \113: '.' for '_', \213: shapes that disagree), \014
# passed-through file, \015 folder, \016 stem of shard 0's file name (\036:
# of shard 1's), \017 tensor in both shards.
c=build-fuzz/corpus-fuzz_names
mkdir -p "$c"
# rule 1: split on '/', folders merge across shards; sub/ names its own first
seed "$c" split '\000\010encoder/layer_0/kernel\000\011encoder/layer_0/bias\000\010encoder/norm\000\012w\000\010sub/w\000\011sub/x'
# rule 2: unsafe names flattened and escaped (an empty name too)
seed "$c" escape '\000\010../etc/passwd\000\011a//b\000\010tab\011x\000\010/abs\000\011.\000\010..\000\011\000\010x/\000\01150%%/../y\000\010new\012line/x\000\010del\177\000\011a%%2Fb'
# rule 3: names taken by real files and folders, and tpfs's own names
seed "$c" clash '\000\014w.npy\000\010w\000\014layer\000\010layer/x\000\015q.npy\000\011q\000\010manifest.json\000\011.tpfs/stats\000\014manifest.json\000\015.tpfs\000\014x.npy\000\014x~1.npy\000\010x'
# 255 bytes: a long name, cuts inside UTF-8 characters and %XX escapes, and
# a long name whose file name is taken (cut shorter for ~1)
seed "$c" long '\000\010%s\000\011%s/\000\010x%s/\000\011xx%s/\000\014%s.npy\000\010%s\000\011%s/w' \
	"$(rep 252 b)" "$(rep 150 é)" "$(rep 120 %)" "$(rep 120 %)" "$(rep 251 n)" \
	"$(rep 251 n)" "$(rep 256 c)"
# invalid UTF-8: the tree alone takes it, the header parser refuses it
seed "$c" utf8 '\000\010\377\376\000\011\303\000\010a/\200\200/b\000\011%s\303' "$(rep 240 x)"
# MXFP4 pairs: across shards, with '.', beside a folder, with mxfp4=both
# and raw, clashing with a plain tensor, with shapes that disagree
seed "$c" pairs '\000\013experts.gate_up_proj\000\063experts.down_proj\000\113block.0.mlp1\000\010block.0.mlp1/bias'
seed "$c" pairs-both '\004\013w\000\033v'
seed "$c" pairs-raw '\002\013w\000\010w'
seed "$c" pairs-clash '\000\013w\000\011w'
seed "$c" pairs-disagree '\000\213w'
# one name in both shards: refused, but not with by_file
seed "$c" twice '\000\017x\000\010y'
seed "$c" twice-by-file '\001\017x\000\010y'
# by_file folders of odd file names
seed "$c" by-file '\001\016\000\036.\000\010w\000\011w'
seed "$c" by-file-percent '\001\01650%%\000\036manifest.json\000\010w\000\011w\000\014model.npy'
seed "$c" by-file-control '\001\016a\011b\000\036..\000\010w\000\011w'
seed "$c" by-file-sub '\001\012x\000\010sub/x\000\015sub/model\000\036sub'

status=0
cd build-fuzz
for t in $targets; do
	case $t in
	fuzz_safetensors) opts="-max_len=65536" ;;
	fuzz_options) opts="-max_len=4096 -dict=../tests/fuzz_options.dict" ;;
	# the loader's warnings would fill the log: stderr closed (libFuzzer and
	# the sanitizers keep their own copy of it)
	fuzz_names) opts="-max_len=4096 -dict=../tests/fuzz_names.dict -close_fd_mask=2" ;;
	esac
	# shellcheck disable=SC2086
	if ./$t -max_total_time="$secs" -timeout=10 $opts "corpus-$t" > "$t.log" 2>&1; then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$t.log")
		took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$t.log")
		last=$(grep ' cov: ' "$t.log" | tail -n 1)
		cov=$(echo "$last" | sed 's/.* cov: \([0-9]*\).*/\1/')
		corp=$(echo "$last" | sed 's/.* corp: \([0-9]*\).*/\1/')
		echo "$t: $runs runs in $took s ($((runs / took))/s), $cov edges covered," \
			"corpus of $corp inputs"
	else
		status=1
		echo "$t: FAILED; the end of build-fuzz/$t.log:"
		tail -n 30 "$t.log"
		for f in $(sed -n 's|.*Test unit written to \./||p' "$t.log"); do
			echo "$t: input left in build-fuzz/$f"
			./$t "$f" 2>&1 | grep -m 1 'invariant broken' || true
		done
	fi
done
exit $status
