#!/bin/sh
# Installs the Debian packages tpfs needs to build, run and test, if any is
# missing. Debian 12 or later; runs apt-get as root (through sudo if needed).
# dpkg-dev is for the Debian package (cpack -G DEB finds its dependencies
# with dpkg-shlibdeps).
# --test adds the tools only the tests use: sshfs and openssh-server, for the
# test of a source on a network mount (it runs an sshd of its own on
# 127.0.0.1), groff-base, to render the man pages, bash-completion, to run
# the completion, and man-db, whose man finds the installed package's pages.
# They are installed without starting the ssh service: a test tool must not
# leave a server listening on the machine.
set -eu
pkgs="build-essential cmake pkg-config libfuse3-dev fuse3 libcjson-dev
      libxxhash-dev python3 python3-numpy dpkg-dev"
[ "${1:-}" = --test ] && pkgs="$pkgs sshfs openssh-server groff-base
	bash-completion man-db"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
# Debian's maintainer scripts start no service while a policy-rc.d says 101
# (as in containers, where one is often there already): put one there for
# this install only.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	trap '$sudo rm -f "$policy"' EXIT
	trap 'exit 1' INT TERM HUP
	printf '#!/bin/sh\n# tpfs tools/deps.sh: no service starts while installing\nexit 101\n' |
		$sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
