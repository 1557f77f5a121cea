#!/bin/sh
# The Debian package, installed and used as a user would:
#   tests/package.sh BUILD_DIR      (a configured, built release build)
# builds tpfs_VERSION_ARCH.deb with cpack in BUILD_DIR, installs it with
# apt-get (again over an installed tpfs), checks what dpkg says it installed
# and that man finds the pages, then mounts a model written here (a tensor
# of known values, and one by the installed tpfs-gen) with
# "mount -t fuse.tpfs" and through an /etc/fstab line, and reads both with
# NumPy against expectations computed here from the Safetensors format.
#
# It leaves the machine as it found it, on failure too: the mounts gone,
# /etc/fstab as it was, byte for byte, and the package purged, unless a tpfs
# package was installed before: that one is replaced by this build's, which
# stays installed. Needs root, dpkg, apt-get and /dev/fuse; without them it
# says why and skips (a missing /dev/fuse fails with TPFS_REQUIRE_FUSE=1).
set -eu
build=$(cd "${1:?usage: tests/package.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
python=/usr/bin/python3

skip() {
	echo "package test skipped: $*"
	exit 0
}
[ "$(id -u)" -eq 0 ] || skip "it needs root (apt-get install, mount, /etc/fstab)"
for tool in dpkg dpkg-deb apt-get; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing"
done
if [ ! -e /dev/fuse ]; then
	[ "${TPFS_REQUIRE_FUSE:-}" = 1 ] && {
		echo "package test: /dev/fuse is missing, and TPFS_REQUIRE_FUSE=1" >&2
		exit 1
	}
	skip "/dev/fuse is missing"
fi

step() { echo "-- $*"; }
# apt-get, waiting for the lock rather than failing while another apt runs
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq "$@"; }
fail() {
	echo "package test FAILED: $*" >&2
	exit 1
}

# Whether dpkg installs PATH: slim images have it leave out documentation
# (path-exclude in its configuration; the last filter that matches wins).
dpkg_keeps() {
	keep=0
	filters=$(cat /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/* 2>/dev/null |
		sed -n 's/^\(path-[a-z]*\)[ =]\{1,\}/\1 /p')
	while read -r kind pattern; do
		# shellcheck disable=SC2254
		case $1 in $pattern) [ "$kind" = path-exclude ] && keep=1 || keep=0 ;; esac
	done <<-EOF
		$filters
	EOF
	return $keep
}

step "building the package: cpack -G DEB in $build"
rm -f "$build"/tpfs_*.deb
if ! log=$(cd "$build" && cpack -G DEB 2>&1); then
	echo "$log" >&2
	fail "cpack -G DEB failed"
fi
set -- "$build"/tpfs_*_*.deb
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	fail "cpack made no one tpfs_*_*.deb in $build"
fi
deb=$1
version=$(dpkg-deb -f "$deb" Version)
depends=$(dpkg-deb -f "$deb" Depends)
echo "   $(basename "$deb"): Depends: $depends"
for dep in 'fuse3[ ,]' 'libfuse3-[0-9]' 'libxxhash' 'libc6[ ,]'; do
	echo ", $depends," | grep -q ", $dep" || fail "Depends has no $dep"
done

before=$(dpkg-query -W -f='${Status} ${Version}' tpfs 2>/dev/null || true)
work=$(mktemp -d)
src=$work/model mnt=$work/mnt
fstab_saved=$work/fstab
if [ -e /etc/fstab ]; then cp -p /etc/fstab "$fstab_saved"; fi
cleanup() {
	status=$?
	set +e
	if grep -q " $mnt " /proc/self/mountinfo; then
		umount "$mnt" || fusermount3 -uz "$mnt"
	fi
	if [ -e "$fstab_saved" ]; then
		cmp -s "$fstab_saved" /etc/fstab || cat "$fstab_saved" > /etc/fstab
		cmp -s "$fstab_saved" /etc/fstab || echo "package test: /etc/fstab NOT restored" >&2
	else
		rm -f /etc/fstab # there was none
	fi
	rm -rf "$work"
	case $before in
	"install ok installed"*)
		echo "-- tpfs was installed before ($before): this build's $version stays" ;;
	*)
		step "removing the package (apt-get purge tpfs)"
		apt_get purge tpfs >/dev/null ||
			echo "package test: apt-get purge tpfs failed" >&2 ;;
	esac
	exit $status
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

step "installing it: apt-get install $deb"
apt_get install --reinstall --allow-downgrades "$deb" >/dev/null
[ "$(dpkg-query -W -f='${Status} ${Version}' tpfs)" = "install ok installed $version" ] ||
	fail "dpkg does not have tpfs $version installed"

step "dpkg -L tpfs: programs, man pages, completion, documentation, examples"
listed=$(dpkg -L tpfs)
for f in /usr/bin/tpfs /usr/bin/tpfs-gen /usr/share/man/man1/tpfs.1.gz \
	/usr/share/man/man1/tpfs-gen.1.gz /usr/share/bash-completion/completions/tpfs \
	/usr/share/doc/tpfs/README.md /usr/share/doc/tpfs/LICENSE \
	$(cd "$here/mount-examples" && for e in *; do echo "/usr/share/doc/tpfs/examples/$e"; done); do
	if ! dpkg_keeps "$f"; then
		echo "   $f: left out by dpkg's path-exclude here"
		continue
	fi
	echo "$listed" | grep -qx "$f" || fail "dpkg -L tpfs does not list $f"
	[ -f "$f" ] || fail "$f is not installed"
done
for prog in tpfs tpfs-gen; do
	got=$("/usr/bin/$prog" --version)
	case $got in "$prog $version"*) ;; *) fail "$prog --version says '$got', not $version" ;; esac
done
if dpkg_keeps /usr/share/man/man1/tpfs.1.gz; then
	step "man -w finds the pages"
	command -v man >/dev/null 2>&1 || fail "man is missing (package man-db)"
	for page in tpfs tpfs-gen; do
		got=$(man -w "$page")
		[ "$got" = "/usr/share/man/man1/$page.1.gz" ] || fail "man -w $page gives '$got'"
		gzip -dc "$got" | cmp -s - "$here/tools/man/$page.1" ||
			fail "$got is not tools/man/$page.1 gzipped"
	done
fi

step "a model: a tensor of known values, and one by /usr/bin/tpfs-gen"
/usr/bin/tpfs-gen "$src" --tensor g=bf16:4x32 --quiet
"$python" - "$src/own.safetensors" <<-'EOF'
	import json, struct, sys
	values = [-1.5 + 0.25 * i for i in range(12)]
	header = json.dumps({"w": {"dtype": "F32", "shape": [3, 4],
	                           "data_offsets": [0, 4 * len(values)]}}).encode()
	with open(sys.argv[1], "wb") as f:
	    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<12f", *values))
EOF
mkdir "$mnt"

# check_mount HOW: the mount is tpfs's, with cache_size=8M, and serves w and g
# as the Safetensors format says.
check_mount() {
	grep " $mnt " /proc/self/mountinfo | grep -q " - fuse.tpfs " ||
		fail "$1: $mnt is not a fuse.tpfs mount"
	"$python" - "$src" "$mnt" <<-'EOF' || fail "$1: the tensors read wrong"
		import json, os, struct, sys
		import numpy as np
		src, mnt = sys.argv[1:]
		want_w = np.array([-1.5 + 0.25 * i for i in range(12)], "<f4").reshape(3, 4)
		# g, from tpfs-gen's file: BF16 bits, widened to float32 by shifting
		with open(os.path.join(src, "model.safetensors"), "rb") as f:
		    n = struct.unpack("<Q", f.read(8))[0]
		    info = json.loads(f.read(n))["g"]
		    begin, end = info["data_offsets"]
		    f.seek(8 + n + begin)
		    bits = np.frombuffer(f.read(end - begin), "<u2").astype("<u4") << 16
		want_g = bits.view("<f4").reshape(info["shape"])
		w = np.load(os.path.join(mnt, "w.npy"))
		g = np.load(os.path.join(mnt, "g.npy"))
		with open(os.path.join(mnt, "manifest.json")) as f:
		    cache = json.load(f)["options"]["cache_size"]
		ok = (w.dtype == want_w.dtype and np.array_equal(w, want_w) and
		      g.dtype == want_g.dtype and g.shape == want_g.shape and
		      np.array_equal(g.view("<u4"), want_g.view("<u4")) and cache == 8 << 20)
		print("   w.npy %s %s, g.npy %s %s, cache_size %d: %s" % (
		    w.dtype, w.shape, g.dtype, g.shape, cache, "as expected" if ok else "WRONG"))
		sys.exit(0 if ok else 1)
	EOF
}

step "mount -t fuse.tpfs -o ro,cache_size=8M SRC MNT"
mount -t fuse.tpfs -o ro,cache_size=8M "$src" "$mnt"
check_mount "mount -t fuse.tpfs"
umount "$mnt"

step "an /etc/fstab line, then mount MNT"
echo "$src $mnt fuse.tpfs ro,noauto,cache_size=8M 0 0" >> /etc/fstab
mount "$mnt"
check_mount "mount through /etc/fstab"
umount "$mnt"
! grep -q " $mnt " /proc/self/mountinfo || fail "$mnt is still mounted after umount"
echo "-- the package works"
