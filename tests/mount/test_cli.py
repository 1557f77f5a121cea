"""The tpfs command line: help and version, options, refusing bad models
before mounting, the background and foreground life cycles, signals,
recovery after kill -9, and the mount(8)/fstab helper form."""

import json
import os
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
        self.assertEqual(T.run_tpfs("umount", "--help").returncode, 0)


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
        self.assertIn("cache_size=SIZE", line)

    def test_bad_values_are_refused(self):
        self.refused("-o", "cache_size=lots", want="cache_size=lots")
        self.refused("-o", "block_size=3000", want="power of two")
        self.refused("-o", "by_file=yes", want="by_file takes no value")
        self.refused("-x", want="unknown flag '-x'")

    def test_missing_or_wrong_mount_point_is_refused(self):
        r = T.run_tpfs("mount", self.src, os.path.join(self.tmp.name, "nope"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("No such file or directory", r.stderr)
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


class BadModels(unittest.TestCase):
    def test_bad_models_are_refused_before_mounting(self):
        T.require_fuse(self)
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
            # As root the daemon raises its mount's readahead to 1 MiB.
            dev = "%d:%d" % (os.major(os.stat(self.mnt).st_dev),
                             os.minor(os.stat(self.mnt).st_dev))
            with open("/sys/class/bdi/%s/read_ahead_kb" % dev) as f:
                self.assertEqual(f.read().strip(), "1024")
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
