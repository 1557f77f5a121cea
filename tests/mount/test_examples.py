"""The files in mount-examples/, run as a user would run them."""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import numpy as np

import tpfstest as T

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "mount-examples")
BUILD = os.path.dirname(os.path.abspath(T.TPFS))
GEN = os.path.join(BUILD, "tpfs-gen")


def load_module():
    spec = importlib.util.spec_from_file_location(
        "load_jax", os.path.join(EXAMPLES, "load_jax.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Examples(T.FuseCase):
    @classmethod
    def prepare(cls, tmp):
        cls.model = os.path.join(tmp, "model")
        subprocess.run([GEN, cls.model, "--preset", "demo", "--quiet", "--layers", "2"],
                       check=True)

    def env(self):
        return dict(os.environ, TPFS=T.TPFS, TPFS_GEN=GEN, PYTHON=sys.executable)

    def test_load_jax_loads_every_tensor_with_numpy(self):
        mod = load_module()
        for opts in (None, "bf16=raw"):
            with self.subTest(opts), T.Mount(self.model, opts=opts) as m:
                def served():
                    with open(m.path(".tpfs/stats")) as f:
                        return json.load(f)["bytes_served"]
                with open(m.path("manifest.json"), "rb") as f:
                    f.read()  # now in the page cache
                before = served()
                lazy, _ = mod.load(m.mnt, pattern=r"layers\.1\.", mmap=True, use_jax=False)
                # nothing read until a tensor is looked up
                self.assertEqual(served(), before)
                self.assertTrue(lazy and all(k.startswith("model.layers.1.") for k in lazy))
                self.assertTrue(all(isinstance(a, np.memmap) for a in lazy.values()))
                self.assertGreater(served(), before)
                tensors, manifest = mod.load(m.mnt, use_jax=False)
                self.assertEqual(set(tensors), {t["name"] for t in manifest["tensors"]})
                for t in manifest["tensors"]:
                    want = np.load(m.path(t["path"]))
                    self.assertTrue(T.same_bits(tensors[t["name"]], want), t["name"])
                del lazy, tensors  # mapped files keep the mount busy
                r = subprocess.run([sys.executable, os.path.join(EXAMPLES, "load_jax.py"),
                                    m.mnt, "--numpy", "--mmap"], capture_output=True,
                                   text=True, check=True)
                count, params = re.match(r"(\d+) tensors, (\d+) parameters", r.stdout).groups()
                self.assertEqual(int(count), len(manifest["tensors"]))
                self.assertEqual(int(params), sum(int(np.prod(t["shape"]))
                                                  for t in manifest["tensors"]))
                self.assertIn("numpy, mmap", r.stdout)

    def test_end_to_end_runs(self):
        with tempfile.TemporaryDirectory() as work:
            r = subprocess.run(["sh", os.path.join(EXAMPLES, "end_to_end.sh"), work],
                               capture_output=True, text=True, env=self.env(), timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"\d+ files identical in the mount and the converted copy")
            for step in ("generate", "mount", "load_every_tensor", "convert", "compare",
                         "unmount"):
                self.assertRegex(r.stderr, r"-- %s +\d+\.\d+ s" % step)
            self.assertFalse(os.path.ismount(os.path.join(work, "mnt")))

    def test_browse_shows_a_card(self):
        with T.Mount(self.model) as m:
            r = subprocess.run(["sh", os.path.join(EXAMPLES, "browse.sh"), m.mnt,
                                "model.norm.weight.npy"], capture_output=True, text=True,
                               env=self.env(), check=True)
            self.assertIn('"tpfs_version"', r.stdout)
            self.assertRegex(r.stdout, r"tensor +model\.norm\.weight\n")
            self.assertRegex(r.stdout, r"mean +1\.0\n")
            self.assertIn('"reads"', r.stdout)

    def test_fstab_lines_mount(self):
        """Each example line, with this machine's folders, through the helper
        form mount.fuse3 uses."""
        with open(os.path.join(EXAMPLES, "fstab.example")) as f:
            lines = [l.split() for l in f if l.strip() and not l.startswith("#")]
        self.assertTrue(lines)
        for src, mnt, fstype, opts, _, _ in lines:
            self.assertEqual(fstype, "fuse.tpfs")
            with self.subTest(opts), tempfile.TemporaryDirectory() as where:
                r = subprocess.run([T.TPFS, self.model, where, "-o", opts],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                try:
                    self.assertTrue(os.path.ismount(where))
                    with open(os.path.join(where, "manifest.json")) as f:
                        options = json.load(f)["options"]
                    for kv in opts.split(","):
                        key, _, value = kv.partition("=")
                        if key in options:
                            self.assertEqual(str(options[key]),
                                             value if key != "cache_size" else str(1 << 30))
                finally:
                    subprocess.run([T.TPFS, "umount", where], check=True)

    def test_systemd_unit_commands_mount_and_unmount(self):
        """The unit's ExecStartPre, ExecStart and ExecStop, with %I and the
        paths pointed at this test's folders, in the order systemd runs them."""
        with open(os.path.join(EXAMPLES, "tpfs@.service")) as f:
            unit = f.read()
        self.assertIn("Type=forking", unit)
        cmds = dict(re.findall(r"^(ExecStartPre|ExecStart|ExecStop)=(.*)$", unit, re.M))
        with tempfile.TemporaryDirectory() as root:
            models = os.path.join(root, "srv-models")
            os.mkdir(models)
            os.symlink(self.model, os.path.join(models, "demo"))
            mnt_root = os.path.join(root, "mnt-npy")

            def run(key):
                line = cmds[key].replace("%I", "demo").replace("/srv/models", models)
                line = line.replace("/mnt/npy", mnt_root)
                argv = shlex.split(line)
                if key != "ExecStartPre":  # systemd's search path has tpfs
                    self.assertEqual(argv[0], "tpfs")
                    argv[0] = T.TPFS
                return subprocess.run(argv, capture_output=True, text=True, timeout=60)

            self.assertEqual(run("ExecStartPre").returncode, 0)
            r = run("ExecStart")
            self.assertEqual(r.returncode, 0, r.stderr)
            mnt = os.path.join(mnt_root, "demo")
            self.assertTrue(os.path.ismount(mnt))  # ready when ExecStart returns
            self.assertIn("model.norm.weight.npy", os.listdir(mnt))
            self.assertEqual(run("ExecStop").returncode, 0)
            self.assertTrue(T.wait_unmounted(mnt))


if __name__ == "__main__":
    T.main()
