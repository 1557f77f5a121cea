#!/bin/sh
# Fuzzes the Safetensors header and index parsers with libFuzzer (clang):
#   tools/fuzz.sh [SECONDS]        (default 60)
# Seeds: every real file in ../shared/realdata and small valid headers.
# Crashing inputs are left in build-fuzz/ as crash-* files.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
sh tools/fresh-build-dir.sh build-fuzz
CC=clang cmake -S . -B build-fuzz -DTPFS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build build-fuzz --target fuzz_safetensors -j "$(nproc)" >/dev/null
corpus=build-fuzz/corpus
mkdir -p "$corpus"
for f in ../shared/realdata/*/*.safetensors ../shared/realdata/*/*.json; do
	[ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")"
done
printf '\x02\x00\x00\x00\x00\x00\x00\x00{}' > "$corpus/empty"
cd build-fuzz
./fuzz_safetensors -max_total_time="$secs" -max_len=65536 -timeout=10 corpus
