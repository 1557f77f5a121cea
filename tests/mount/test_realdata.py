"""Every real Safetensors file written by other tools (PyTorch, NumPy, MLX,
tinygrad, a 6-shard checkpoint) mounted and compared with its source, bit for
bit. Each file is mounted alone through a symlink, as a Hugging Face cache
snapshot would present it; the sharded folder is mounted whole."""

import json
import os
import tempfile

import tpfstest as T

ROOT = os.environ.get("TPFS_REALDATA", "")


def real_files():
    out = []
    for dirpath, dirs, files in os.walk(ROOT):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".safetensors"):
                out.append(os.path.join(dirpath, name))
    return out


class RealData(T.FuseCase):
    def setUp(self):
        super().setUp()
        if not os.path.isdir(ROOT):
            self.skipTest("no real data at %r" % ROOT)

    def check_metadata(self, manifest, src_dir):
        for f in manifest["files"]:
            meta, _ = T.read_safetensors(os.path.join(src_dir, f["path"]))
            if meta == "absent":
                self.assertNotIn("metadata", f, f["path"])
            else:
                self.assertEqual(f["metadata"], meta, f["path"])

    def test_each_file_alone_round_trips(self):
        files = real_files()
        self.assertGreaterEqual(len(files), 23)
        total = 0
        for path in files:
            with self.subTest(file=os.path.relpath(path, ROOT)), \
                    tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "src")
                os.mkdir(src)
                os.symlink(path, os.path.join(src, os.path.basename(path)))
                with T.Mount(src) as m:
                    with open(m.path("manifest.json")) as f:
                        manifest = json.load(f)
                    _, infos = T.read_safetensors(path)
                    self.assertEqual(len(manifest["tensors"]), len(infos))
                    total += T.check_source_tree(self, src, m, manifest)
                    self.check_metadata(manifest, src)
        self.assertGreater(total, 300)

    def test_sharded_checkpoint_is_one_namespace(self):
        src = os.path.join(ROOT, "fluxml-sharded")
        with T.Mount(src) as m:
            with open(m.path("manifest.json")) as f:
                manifest = json.load(f)
            self.assertEqual(len(manifest["tensors"]), 36)
            with open(os.path.join(src, "model.safetensors.index.json")) as f:
                index = json.load(f)
            for t in manifest["tensors"]:
                self.assertEqual(index["weight_map"][t["name"]], t["source_file"])
            self.assertEqual(T.check_source_tree(self, src, m, manifest), 36)
            with open(m.path("model.safetensors.index.json"), "rb") as a, \
                    open(os.path.join(src, "model.safetensors.index.json"), "rb") as b:
                self.assertEqual(a.read(), b.read())
            self.check_metadata(manifest, src)

    def test_folder_with_repeated_names_needs_by_file(self):
        src = os.path.join(ROOT, "hf-samples")
        with tempfile.TemporaryDirectory() as mnt:
            r = T.run_tpfs("mount", src, mnt)
            self.assertNotEqual(r.returncode, 0)
            self.assertFalse(os.path.ismount(mnt))
        self.assertIn("-o by_file", r.stderr)
        with T.Mount(src, opts="by_file") as m:
            with open(m.path("manifest.json")) as f:
                manifest = json.load(f)
            self.assertEqual(sorted(os.listdir(m.mnt))[:3], [".tpfs", "B", "H"])
            self.assertTrue(all(t["path"].split("/")[0] + ".safetensors" ==
                                t["source_file"] for t in manifest["tensors"]))
            self.assertEqual(T.check_source_tree(self, src, m, manifest), 18)


if __name__ == "__main__":
    T.main()
