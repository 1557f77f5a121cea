#!/bin/sh
# Installs the Debian packages tpfs needs to build, run and test, if any is
# missing. Debian 12 or later; runs apt-get as root (through sudo if needed).
set -eu
pkgs="build-essential cmake pkg-config libfuse3-dev fuse3 libcjson-dev
      libxxhash-dev python3 python3-numpy"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
