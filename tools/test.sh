#!/bin/sh
# Runs the whole test suite: installs what is missing, builds tpfs twice
# (optimised, as tools/demo.sh builds it, and unoptimised with AddressSanitizer and
# UndefinedBehaviorSanitizer) and runs every test in both builds: unit tests
# and real FUSE mounts read with NumPy; then builds the Debian package from
# the optimised build, installs it, mounts with it through mount(8) and
# /etc/fstab, and removes it unless a tpfs package was installed before
# (tests/package.sh, as root); then, where clang is installed, fuzzes for
# 30 seconds each the header parser, the -o parser and the name rules
# (tools/fuzz.sh). Set TPFS_REQUIRE_FUSE=1 to make a
# missing /dev/fuse a failure, and TPFS_REALDATA to the folder of real
# Safetensors files when it is not ../shared/realdata.
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh --test
jobs=$(nproc)
realdata=${TPFS_REALDATA:-$(pwd)/../shared/realdata}
for variant in release asan; do
	dir=build-test-$variant
	flags="-DCMAKE_BUILD_TYPE=Release"
	[ "$variant" = asan ] && flags="-DCMAKE_BUILD_TYPE=Debug -DTPFS_SANITIZE=ON"
	echo "== $variant build"
	# a build folder copied from another checkout would make CMake refuse
	sh tools/fresh-build-dir.sh "$dir"
	cmake -S . -B "$dir" $flags -DPython3_EXECUTABLE=/usr/bin/python3 \
		-DTPFS_REALDATA="$realdata" >/dev/null
	cmake --build "$dir" -j "$jobs" >/dev/null
	(cd "$dir" && ctest --output-on-failure -j "$jobs")
done
echo "== the Debian package: built, installed, mounted through mount(8) and" \
	"/etc/fstab, removed (tests/package.sh)"
sh tests/package.sh build-test-release
if command -v clang >/dev/null 2>&1; then
	echo "== fuzzing for 30 s each: the Safetensors header and index parsers" \
		"(fuzz_safetensors), the -o parser (fuzz_options), tensor names to paths" \
		"(fuzz_names)"
	log=$(mktemp)
	if ! tools/fuzz.sh 30 > "$log" 2>&1; then
		tail -n 100 "$log"
		rm -f "$log"
		exit 1
	fi
	grep '^fuzz_' "$log"
	rm -f "$log"
else
	echo "== clang not installed: fuzzing skipped"
fi
