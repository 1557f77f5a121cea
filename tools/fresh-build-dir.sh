#!/bin/sh
# fresh-build-dir.sh DIR: remove DIR if CMake configured it for another
# source folder (a build folder copied along with a checkout), since CMake
# refuses to reuse it.
set -eu
dir=$1
cache=$dir/CMakeCache.txt
[ -f "$cache" ] || exit 0
here=$(pwd -P)
if ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$here" "$cache"; then
	echo "$dir was configured for another checkout: starting it afresh"
	rm -rf "$dir"
fi
