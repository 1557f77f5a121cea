"""The tpfs command line: help and version, options, refusing bad models
before mounting, the background and foreground life cycles, signals,
recovery after kill -9, and the mount(8)/fstab helper form."""

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import tpfstest as T


def small_model(folder):
    T.write_safetensors(os.path.join(folder, "model.safetensors"),
                        [("w", "F32", (4,), struct.pack("<4f", 1, 2, 3, 4))])


def mounts_line(mnt):
    real = os.path.realpath(mnt)
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == real:
                return parts
    return None


class Workspace(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.tmp.name, "src")
        self.mnt = os.path.join(self.tmp.name, "mnt")
        os.mkdir(self.src)
        os.mkdir(self.mnt)
        small_model(self.src)

    def tearDown(self):
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt])
        self.tmp.cleanup()


class Help(unittest.TestCase):
    def test_version_and_help(self):
        r = T.run_tpfs("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^tpfs \d+\.\d+\.\d+")
        r = T.run_tpfs("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("tpfs mount SRC MNT", r.stdout)
        self.assertIn("tpfs umount MNT", r.stdout)

    def test_tpfs_gen_has_the_same_version(self):
        gen = os.path.join(os.path.dirname(os.path.abspath(T.TPFS)), "tpfs-gen")
        version = T.run_tpfs("--version").stdout.split()[1]
        r = subprocess.run([gen, "--version"], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "tpfs-gen %s\n" % version))
        r = subprocess.run([gen, "--help"], capture_output=True, text=True)
        self.assertIn("--version", r.stdout)

    def test_mount_help_lists_every_option(self):
        r = T.run_tpfs("mount", "--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("cache_size=SIZE", "block_size=SIZE", "by_file", "allow_other",
                    "auto_unmount", "-f", "-d", "-s"):
            self.assertIn(opt, r.stdout)

    def test_no_arguments_is_a_usage_error(self):
        r = T.run_tpfs()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)
        for word in ("frobnicate", "version"):
            r = T.run_tpfs(word)
            self.assertEqual(r.returncode, 2)
            self.assertIn("unknown command '%s'" % word, r.stderr)
        r = T.run_tpfs("--version")
        self.assertRegex(r.stdout, r"\(libfuse 3\.\d+\)")
        r = T.run_tpfs("umount", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("Only tpfs mounts", r.stdout)


class Options(Workspace):
    def refused(self, *args, want):
        r = T.run_tpfs("mount", self.src, self.mnt, *args)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(os.path.ismount(self.mnt))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(want, lines[0])
        return lines[0]

    def test_unknown_option_is_refused_with_the_valid_ones(self):
        line = self.refused("-o", "bogus=1", want="unknown option 'bogus=1'")
        # tpfs's own and every option the README passes to the kernel
        for opt in ("cache_size=SIZE", "block_size=SIZE", "by_file", "bf16=", "fp8=",
                    "mxfp4=", "dtype=", "allow_other", "allow_root", "auto_unmount",
                    "nodev", "nosuid", "noexec", "dev", "suid", "exec", "atime",
                    "noatime", "sync", "async", "dirsync"):
            self.assertRegex(line, r"[ ,]%s\b" % re.escape(opt), opt)
        self.assertIn("fstab", line)

    def test_bad_values_are_refused(self):
        self.refused("-o", "cache_size=lots", want="cache_size=lots")
        self.refused("-o", "block_size=3000", want="power of two")
        self.refused("-o", "by_file=yes", want="by_file takes no value")
        self.refused("-x", want="unknown flag '-x'")

    def test_missing_or_wrong_mount_point_is_refused(self):
        nope = os.path.join(self.tmp.name, "nope")
        r = T.run_tpfs("mount", self.src, nope)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stderr, "tpfs: mount point %s does not exist (mkdir it "
                                   "first)\n" % nope)
        # the source is checked first
        r = T.run_tpfs("mount", nope + "-src", nope)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stderr, "tpfs: %s-src: No such file or directory\n" % nope)
        # a mount point inside the source
        inner = os.path.join(self.src, "inner")
        os.mkdir(inner)
        r = T.run_tpfs("mount", self.src, inner)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is inside the source", r.stderr)
        self.assertFalse(os.path.ismount(inner))
        r = T.run_tpfs("mount", self.src,
                       os.path.join(self.src, "model.safetensors"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not a folder", r.stderr)


def bad_models():
    """(what, files to write, expected message fragment)."""
    u8 = lambda n: {"dtype": "U8", "shape": [n]}  # noqa: E731

    def st(header, data=b"", pad=b""):
        text = json.dumps(header).encode() + pad
        return struct.pack("<Q", len(text)) + text + data

    return [
        ("truncated length", {"model.safetensors": b"\x05\x00"},
         "too short for the 8-byte header length"),
        ("header past the end", {"model.safetensors": struct.pack("<Q", 999) + b"{}"},
         "runs past the end of the file"),
        ("not json", {"model.safetensors": struct.pack("<Q", 5) + b"{\"a\":"},
         "not valid JSON"),
        ("unknown dtype", {"model.safetensors": st(
            {"w": {"dtype": "F12", "shape": [1], "data_offsets": [0, 1]}}, b"x")},
         "tensor 'w': unknown dtype 'F12'"),
        ("overlap", {"model.safetensors": st(
            {"a": dict(u8(2), data_offsets=[0, 2]),
             "b": dict(u8(2), data_offsets=[1, 3])}, b"xyz")},
         "overlap"),
        ("trailing bytes", {"model.safetensors": st(
            {"a": dict(u8(2), data_offsets=[0, 2])}, b"xyz")},
         "1 bytes follow the last tensor's data"),
        ("one good one bad", {
            "a.safetensors": st({"a": dict(u8(1), data_offsets=[0, 1])}, b"x"),
            "sub/b.safetensors": st({"b": dict(u8(3), data_offsets=[0, 2])}, b"xy")},
         "sub/b.safetensors: tensor 'b': shape [3] of U8 needs 3 bytes"),
        ("duplicate across files", {
            "a.safetensors": st({"w": dict(u8(1), data_offsets=[0, 1])}, b"x"),
            "b.safetensors": st({"w": dict(u8(1), data_offsets=[0, 1])}, b"y")},
         "tensor 'w' is in both a.safetensors and b.safetensors"),
        ("index disagrees", {
            "model-1.safetensors": st({"w": dict(u8(1), data_offsets=[0, 1])}, b"x"),
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"w": "model-2.safetensors"}}).encode()},
         "weight_map puts tensor 'w' in 'model-2.safetensors'"),
        ("empty index", {
            "model.safetensors": st({"w": dict(u8(1), data_offsets=[0, 1])}, b"x"),
            "model.safetensors.index.json": b""},
         "model.safetensors.index.json: the index is empty (rule: an index is a JSON "
         "object with a weight_map)"),
    ]


class MountPoints(Workspace):
    def setUp(self):
        T.require_fuse(self)
        super().setUp()

    def test_every_documented_option_mounts(self):
        """Each option the README lists as passed on or ignored."""
        for opt in ("allow_other", "allow_root", "auto_unmount", "nodev", "nosuid",
                    "noexec", "dev", "suid", "exec", "atime", "noatime", "sync", "async",
                    "dirsync", "ro", "rw", "defaults", "auto", "noauto", "user", "users",
                    "nouser", "owner", "group", "_netdev", "nofail", "relatime",
                    "norelatime", "strictatime", "nodiratime", "default_permissions",
                    "x-systemd.automount", "comment=x"):
            with self.subTest(opt):
                r = T.run_tpfs("mount", self.src, self.mnt, "-o", opt)
                self.assertEqual(r.returncode, 0, r.stderr)
                flags = mounts_line(self.mnt)[3].split(",")
                if opt not in ("suid", "dev"):  # nosuid, nodev by default
                    self.assertIn("nosuid", flags)
                    self.assertIn("nodev", flags)
                self.assertEqual(T.run_tpfs("umount", self.mnt).returncode, 0)
                self.assertTrue(T.wait_unmounted(self.mnt))

    def test_mistakes_with_mount_points_are_refused(self):
        r = T.run_tpfs("mount", self.src, self.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = T.run_tpfs("mount", self.src, self.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is already a mount point (fuse.tpfs from", r.stderr)
        self.assertEqual(T.run_tpfs("umount", self.mnt).returncode, 0)
        self.assertTrue(T.wait_unmounted(self.mnt))
        r = T.run_tpfs("umount", self.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stderr.strip(), "tpfs: %s is not mounted" % self.mnt)
        for mnt in (self.src, self.tmp.name):
            r = T.run_tpfs("mount", self.src, mnt)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("would hide the source", r.stderr)
            self.assertFalse(os.path.ismount(mnt))
        # A folder with files in it: mounted, with a warning.
        with open(os.path.join(self.mnt, "old.txt"), "w") as f:
            f.write("x")
        r = T.run_tpfs("mount", self.src, self.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is not empty: the mount hides its files", r.stderr)
        self.assertEqual(T.run_tpfs("umount", self.mnt).returncode, 0)

    def test_a_mount_point_swapped_for_a_link_while_loading_is_refused(self):
        """The mount point is held from its check to the mount: a folder
        replaced by a link to another folder while a large model loads must
        not send the mount there."""
        n = 1000000
        head = json.dumps({"t%d" % i: {"dtype": "U8", "shape": [1],
                                       "data_offsets": [i, i + 1]}
                           for i in range(n)}, separators=(",", ":")).encode()
        with open(os.path.join(self.src, "model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(head)) + head + bytes(n))
        target = os.path.join(self.tmp.name, "target")
        os.mkdir(target)
        proc = subprocess.Popen([T.TPFS, "mount", self.src, self.mnt],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        os.rename(self.mnt, self.mnt + ".held")
        os.symlink(target, self.mnt)
        _, err = proc.communicate(timeout=120)
        self.assertFalse(os.path.ismount(target))
        self.assertFalse(os.path.ismount(self.mnt + ".held"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("the mount point was moved or replaced; not mounting", err)
        os.unlink(self.mnt)
        os.rename(self.mnt + ".held", self.mnt)

    def test_double_dash_ends_the_flags(self):
        os.rename(self.src, os.path.join(self.tmp.name, "-model"))
        r = subprocess.run([os.path.abspath(T.TPFS), "mount", "--", "-model", "mnt"],
                           cwd=self.tmp.name, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.ismount(self.mnt))
        self.assertEqual(T.run_tpfs("umount", self.mnt).returncode, 0)

    def test_by_file_folders_of_odd_file_names_stay_inside(self):
        for name in (".safetensors", "..safetensors", "...safetensors"):
            T.write_safetensors(os.path.join(self.src, name),
                                [("x", "F32", (1,), struct.pack("<f", 7))])
        with T.Mount(self.src, opts="by_file", mnt=self.mnt) as m:
            with open(m.path("manifest.json")) as f:
                manifest = json.load(f)
            for t in manifest["tensors"]:
                for part in t["path"].split("/"):
                    self.assertNotIn(part, ("", ".", ".."), t["path"])
            self.assertEqual(set(os.listdir(m.mnt)),
                             {".safetensors", ".tpfs", "..safetensors", "...safetensors",
                              "manifest.json", "model"})


def mountinfo_line(path):
    """(type, source) of the mount on top of path, read from the kernel's
    /proc/self/mountinfo (fields after ' - '), or None."""
    def unescape(field):  # mountinfo writes space, tab, newline, \\ as \\ooo
        return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
    real = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if unescape(left.split()[4]) == real:  # the last is on top
                found = tuple(unescape(x) for x in right.split()[:2])
    return found


class UmountOnlyTpfs(Workspace):
    """tpfs umount unmounts tpfs mounts only: run by root, fusermount3 -u
    would unmount whatever is mounted there."""

    def setUp(self):
        super().setUp()
        self.foreign = []  # mount points this test mounted, to undo

    def tearDown(self):
        for path in reversed(self.foreign):
            if mountinfo_line(path):
                subprocess.run(["umount", path])
        super().tearDown()

    def mount(self, *args):
        """mount(8) args, the mount point last; skips where it cannot."""
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs or a bind mount needs root")
        r = subprocess.run(["mount", *args], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("'mount %s' is not permitted here: %s"
                          % (" ".join(args), r.stderr.strip()))
        self.foreign.append(args[-1])

    def refused(self, path, fstype, source):
        r = T.run_tpfs("umount", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.splitlines(),
                         ["tpfs: %s is a mount of type %s (source %s), not a tpfs "
                          "mount: not unmounting it" % (path, fstype, source)])
        # Still there (os.path.ismount cannot see a bind mount within one
        # filesystem).
        self.assertEqual(mountinfo_line(path), (fstype, source))

    def test_a_tmpfs_is_left_mounted(self):
        self.mount("-t", "tmpfs", "none", self.mnt)
        with open(os.path.join(self.mnt, "keep.txt"), "w") as f:
            f.write("still here")
        self.refused(self.mnt, "tmpfs", "none")
        with open(os.path.join(self.mnt, "keep.txt")) as f:
            self.assertEqual(f.read(), "still here")
        # Relative, and with a trailing slash: the same mount, the same answer.
        r = subprocess.run([os.path.abspath(T.TPFS), "umount", "mnt/"],
                           cwd=self.tmp.name, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("of type tmpfs", r.stderr)
        self.assertTrue(os.path.ismount(self.mnt))

    def test_a_mount_on_top_of_a_tpfs_mount_is_left_mounted(self):
        T.require_fuse(self)
        r = T.run_tpfs("mount", self.src, self.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The source has a space, which mountinfo writes as \040.
        self.mount("-t", "tmpfs", "a tmpfs", self.mnt)
        self.refused(self.mnt, "tmpfs", "a tmpfs")
        self.assertEqual(os.listdir(self.mnt), [])
        subprocess.run(["umount", self.mnt], check=True)
        self.assertIn("w.npy", os.listdir(self.mnt))
        r = T.run_tpfs("umount", self.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(T.wait_unmounted(self.mnt))

    def test_a_bind_mount_is_left_mounted(self):
        self.mount("--bind", self.src, self.mnt)
        fstype, source = mountinfo_line(self.mnt)
        self.assertNotIn("tpfs", fstype)
        self.refused(self.mnt, fstype, source)
        self.assertEqual(os.listdir(self.mnt), ["model.safetensors"])

    def test_a_fuse_mount_of_another_type_is_left_mounted(self):
        T.require_fuse(self)
        sshfs = shutil.which("sshfs")
        server = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/lib/sftp-server")
                       if os.access(p, os.X_OK)), None)
        if not sshfs or not server:
            self.skipTest("needs sshfs and OpenSSH's sftp-server for a FUSE mount "
                          "that is not tpfs")
        # sshfs -o passive speaks SFTP on its stdin and stdout: wired to a
        # local sftp-server, no network and no ssh are involved.
        sftp = subprocess.Popen([server], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        fs = subprocess.Popen([sshfs, "-f", "-o", "passive", "local:" + self.src, self.mnt],
                              stdin=sftp.stdout, stdout=sftp.stdin, stderr=subprocess.PIPE)
        sftp.stdin.close()
        sftp.stdout.close()
        try:
            deadline = time.time() + 20
            while not os.path.ismount(self.mnt):
                if fs.poll() is not None:
                    self.fail("sshfs exited %d: %s" % (fs.returncode, fs.stderr.read()))
                self.assertLess(time.time(), deadline)
                time.sleep(0.02)
            self.refused(self.mnt, "fuse.sshfs", "local:" + self.src)
            self.assertEqual(os.listdir(self.mnt), ["model.safetensors"])
        finally:
            if os.path.ismount(self.mnt):
                subprocess.run(["fusermount3", "-u", self.mnt])
            fs.wait(timeout=20)
            fs.stderr.close()
            sftp.wait(timeout=20)

    def test_a_dead_tpfs_mount_is_unmounted(self):
        T.require_fuse(self)
        # As the user would type it: relative or not, with a trailing slash.
        for spelling in ("mnt/", self.mnt + "//"):
            p = subprocess.Popen([T.TPFS, "mount", self.src, self.mnt, "-f"],
                                 stderr=subprocess.DEVNULL)
            deadline = time.time() + 20
            while not os.path.ismount(self.mnt):
                self.assertIsNone(p.poll(), "daemon exited early")
                self.assertLess(time.time(), deadline)
                time.sleep(0.01)
            p.kill()
            p.wait()
            with self.assertRaises(OSError):  # transport endpoint is not connected
                os.listdir(self.mnt)
            self.assertEqual(mountinfo_line(self.mnt)[0], "fuse.tpfs")
            r = subprocess.run([os.path.abspath(T.TPFS), "umount", spelling],
                               cwd=self.tmp.name, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, "")
            self.assertFalse(os.path.ismount(self.mnt))

    def test_a_folder_that_is_no_mount_point_is_not_mounted(self):
        r = T.run_tpfs("umount", self.src)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "tpfs: %s is not mounted\n" % self.src)


class BadModels(T.FuseCase):
    def test_bad_models_are_refused_before_mounting(self):
        for what, files, want in bad_models():
            with self.subTest(what), tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "src")
                mnt = os.path.join(tmp, "mnt")
                os.mkdir(mnt)
                for rel, data in files.items():
                    os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                    with open(os.path.join(src, rel), "wb") as f:
                        f.write(data)
                r = T.run_tpfs("mount", src, mnt)
                self.assertNotEqual(r.returncode, 0)
                self.assertFalse(os.path.ismount(mnt))
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertTrue(lines[0].startswith("tpfs: " + src), lines[0])
                self.assertIn(want, lines[0])


def plain_lines(test, data, what):
    """data (bytes) is whole lines holding no control byte (below 0x20, and
    0x7f) but their newlines; returns them."""
    test.assertTrue(data.endswith(b"\n"), what)
    lines = data[:-1].split(b"\n")
    for line in lines:
        test.assertFalse(re.search(rb"[\x00-\x1f\x7f]", line), (what, line))
    return lines


class NamesInRefusals(Workspace):
    """A file or tensor name with control bytes in it is written %XX in a
    refusal, which stays one line: a name cannot forge a second line (such
    as 'tpfs: mounted OK') or drive root's terminal."""

    def test_every_kind_of_refusal_stays_one_line(self):
        def st(header):
            text = json.dumps(header).encode()
            return struct.pack("<Q", len(text)) + text

        u8 = {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}
        evil = "evil\ntpfs: fake line.safetensors"
        cases = [
            (evil, st({"x": 5}),
             "evil%0Atpfs: fake line.safetensors: tensor 'x': entry is not an object"),
            ("model.safetensors", st({"x\ntpfs: mounted OK": dict(u8, dtype=5)}),
             "tensor 'x%0Atpfs: mounted OK': \"dtype\" is not a string"),
            ("model.safetensors", st({"x\x1b[31m\t": dict(u8, shape=5)}),
             "tensor 'x%1B[31m%09': \"shape\" is not an array"),
            ("model.safetensors", st({"__metadata__": {"k\rv": 1}}),
             "__metadata__ value of key 'k%0Dv' is not a string"),
            (evil, st({"__metadata__": 1}),
             "evil%0Atpfs: fake line.safetensors: __metadata__ must be an object"),
            ("model.safetensors.index.json", json.dumps(
                {"weight_map": {"w\ntpfs: mounted OK": 5}}).encode(),
             "weight_map entry 'w%0Atpfs: mounted OK' is not a file name"),
        ]
        for name, data, want in cases:
            with self.subTest(want):
                shutil.rmtree(self.src)
                os.mkdir(self.src)
                if name.endswith(".json"):  # an index beside a good shard
                    small_model(self.src)
                with open(os.path.join(self.src, name), "wb") as f:
                    f.write(data)
                for args, prefix in ((("mount", self.src, self.mnt), "tpfs: "),
                                     (("ls", self.src), "tpfs ls: ")):
                    r = subprocess.run([T.TPFS, *args], capture_output=True, timeout=60)
                    self.assertNotEqual(r.returncode, 0)
                    self.assertFalse(os.path.ismount(self.mnt))
                    lines = plain_lines(self, r.stderr, args[0])
                    self.assertEqual(len(lines), 1, r.stderr)
                    line = lines[0]
                    self.assertTrue(line.startswith(prefix.encode()), line)
                    self.assertIn(want.encode(), line)


class LifeCycle(Workspace):
    def setUp(self):
        T.require_fuse(self)
        super().setUp()

    def test_background_mount_is_ready_when_the_command_returns(self):
        r = T.run_tpfs("mount", self.src, self.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.ismount(self.mnt))
        with open(os.path.join(self.mnt, "manifest.json")) as f:
            self.assertEqual(json.load(f)["tensors"][0]["name"], "w")
        line = mounts_line(self.mnt)
        self.assertEqual(line[0], os.path.realpath(self.src))
        self.assertEqual(line[2], "fuse.tpfs")
        self.assertIn("ro", line[3].split(","))
        if os.getuid() == 0:
            # As root the daemon raises its mount's readahead to 1 MiB,
            # and asks for up to 64 requests in flight (48 before the
            # kernel counts the connection as congested).
            st = os.stat(self.mnt)
            dev = "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
            with open("/sys/class/bdi/%s/read_ahead_kb" % dev) as f:
                self.assertEqual(f.read().strip(), "1024")
            conn = "/sys/fs/fuse/connections/%d" % os.minor(st.st_dev)
            if os.path.isdir(conn):  # fusectl mounted
                with open(conn + "/max_background") as f:
                    self.assertEqual(f.read().strip(), "64")
                with open(conn + "/congestion_threshold") as f:
                    self.assertEqual(f.read().strip(), "48")
        r = T.run_tpfs("umount", self.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(T.wait_unmounted(self.mnt))

    def test_relative_paths_work(self):
        r = subprocess.run([os.path.abspath(T.TPFS), "mount", "src", "mnt"],
                           cwd=self.tmp.name, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.mnt, "w.npy")))
        self.assertEqual(mounts_line(self.mnt)[0], os.path.realpath(self.src))
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)

    def test_single_file_source(self):
        f = os.path.join(self.src, "model.safetensors")
        with T.Mount(f, mnt=self.mnt) as m:
            self.assertEqual(sorted(os.listdir(m.mnt)), [".tpfs", "manifest.json", "w.npy"])

    def test_fstab_helper_form_ignores_mount_noise(self):
        opts = ("ro,rw,defaults,auto,noauto,user,nofail,_netdev,noatime,nodev,"
                "nosuid,x-systemd.automount,cache_size=64M")
        r = T.run_tpfs(self.src, self.mnt, "-o", opts)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.ismount(self.mnt))
        with open(os.path.join(self.mnt, "manifest.json")) as f:
            self.assertEqual(json.load(f)["options"]["cache_size"], 64 << 20)
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)

    def foreground(self, *extra):
        p = subprocess.Popen([T.TPFS, "mount", self.src, self.mnt, "-f", *extra],
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while not os.path.ismount(self.mnt):
            self.assertIsNone(p.poll(), "daemon exited early")
            self.assertLess(time.time(), deadline)
            time.sleep(0.01)
        return p

    def test_sigterm_and_sigint_unmount_cleanly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            p = self.foreground()
            os.listdir(self.mnt)
            p.send_signal(sig)
            self.assertEqual(p.wait(timeout=20), 0)
            self.assertFalse(os.path.ismount(self.mnt))
            T.check_daemon_output(0, p.stderr.read())
            p.stderr.close()

    def test_debug_logs_requests(self):
        p = self.foreground("-d")
        os.listdir(self.mnt)
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)
        self.assertEqual(p.wait(timeout=20), 0)
        err = p.stderr.read()
        p.stderr.close()
        self.assertIn("init: max_readahead", err)
        self.assertIn("READDIR", err)

    def test_kill_9_is_recovered_with_fusermount3(self):
        p = self.foreground()
        p.kill()
        p.wait()
        p.stderr.close()
        with self.assertRaises(OSError):
            os.listdir(self.mnt)
        r = T.run_tpfs("mount", self.src, self.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("fusermount3 -u", r.stderr)
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)
        self.assertFalse(os.path.ismount(self.mnt))
        with T.Mount(self.src, mnt=self.mnt) as m:
            self.assertIn("w.npy", os.listdir(m.mnt))


if __name__ == "__main__":
    T.main()
