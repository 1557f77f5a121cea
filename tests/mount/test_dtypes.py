"""Every dtype and option through real mounts: FP8, E8M0, F4, F6, BF16, the
float casts, and GPT-OSS MXFP4 pairs dequantized across shards, each
compared with a reference written here in NumPy from the formats'
definitions."""

import json
import os
import subprocess
import tempfile

import numpy as np

import tpfstest as T

rng = np.random.default_rng(3)


def rand(n):
    return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()


def floats(dtype, shape, scale=1.0):
    return (rng.standard_normal(int(np.prod(shape))) * scale).astype(dtype).tobytes()


def bf16(shape):
    """BF16 bytes: the high halves of normal float32 values."""
    f = np.frombuffer(floats("<f4", shape), dtype="<u4")
    return (f >> 16).astype("<u2").tobytes()


# An expert weight as GPT-OSS ships it: experts x rows x groups x 16 bytes,
# with one scale a group; here 4 x 16 x 4 groups, so the 256 scales can be
# every value from 0 to 255 once.
E, R, G = 4, 16, 4
SCALES = rng.permutation(256).astype(np.uint8).tobytes()


def build_gpt_oss(root):
    """Two shards with an index; the gate_up pair is split across them."""
    src = os.path.join(root, "gpt")
    p = "model.layers.0.mlp.experts."
    shard1 = [(p + "gate_up_proj_blocks", "U8", (E, R, G, 16), rand(E * R * G * 16)),
              (p + "gate_up_proj_bias", "BF16", (E, R), bf16((E, R))),
              ("model.embed_tokens.weight", "BF16", (8, 4), rand(64))]
    shard2 = [(p + "gate_up_proj_scales", "U8", (E, R, G), SCALES),
              (p + "down_proj_blocks", "U8", (E, 8, 2, 16), rand(E * 8 * 2 * 16)),
              (p + "down_proj_scales", "U8", (E, 8, 2), bytes(rng.integers(118, 126, E * 16, dtype=np.uint8)))]
    files = {"model-00001-of-00002.safetensors": shard1,
             "model-00002-of-00002.safetensors": shard2}
    weight_map = {}
    for name, tensors in files.items():
        T.write_safetensors(os.path.join(src, name), tensors, metadata={"format": "pt"})
        weight_map.update({t[0]: name for t in tensors})
    with open(os.path.join(src, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    # The original checkpoint layout: ".blocks" / ".scales".
    T.write_safetensors(os.path.join(src, "original", "model.safetensors"),
                        [("block.0.mlp.mlp1_weight.blocks", "U8", (2, 4, 2, 16), rand(256)),
                         ("block.0.mlp.mlp1_weight.scales", "U8", (2, 4, 2), SCALES[:16])])
    return src


def build_mixed(root):
    """One tensor of every floating kind, for the option tests."""
    src = os.path.join(root, "mixed")
    every = bytes(range(256))
    big = np.array([1.0, 65504.0, 65520.0, 1e6, -1e9, np.inf, np.nan, 1e-8],
                   dtype="<f4").tobytes()
    tensors = [("bf16", "BF16", (256, 256), np.arange(65536, dtype="<u2").tobytes()),
               ("f16", "F16", (256, 256), np.arange(65536, dtype="<u2").tobytes()),
               ("f32", "F32", (8,), big),
               ("f64", "F64", (3, 5), floats("<f8", (15,), 1e3)),
               ("e4m3", "F8_E4M3", (256,), every),
               ("e5m2", "F8_E5M2", (256,), every),
               ("e8m0", "F8_E8M0", (256,), every),
               ("f4", "F4", (16, 32), every),
               ("f6", "F6_E3M2", (8,), rand(6)),
               ("i32", "I32", (4,), rand(16)),
               ("w_blocks", "U8", (2, 8, 16), rand(256)),
               ("w_scales", "U8", (2, 8), SCALES[100:116])]
    T.write_safetensors(os.path.join(src, "model.safetensors"), tensors)
    return src


class GptOss(T.FuseCase):

    def test_mxfp4_pairs_dequantize_across_shards(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = build_gpt_oss(tmp)
            with T.Mount(src) as m:
                with open(m.path("manifest.json")) as f:
                    manifest = json.load(f)
                self.assertEqual(T.check_source_tree(self, src, m, manifest), 5)
                names = os.listdir(m.mnt)
                p = "model.layers.0.mlp.experts."
                self.assertIn(p + "gate_up_proj.npy", names)
                self.assertNotIn(p + "gate_up_proj_blocks.npy", names)
                self.assertNotIn(p + "gate_up_proj_scales.npy", names)
                self.assertIn("block.0.mlp.mlp1_weight.npy", os.listdir(m.path("original")))
                t = [x for x in manifest["tensors"] if x["name"] == p + "gate_up_proj"][0]
                self.assertEqual(t["conversion"], "mxfp4->f32")
                self.assertEqual(t["shape"], [E, R, G * 32])
                self.assertEqual([s["file"] for s in t["sources"]],
                                 ["model-00001-of-00002.safetensors",
                                  "model-00002-of-00002.safetensors"])
                w = np.load(m.path(p + "gate_up_proj.npy"))
                # Every scale appears: 2^-127 subnormals, overflows, NaN at 255.
                self.assertTrue(np.isnan(w).any())
                tiny = np.abs(w[(w != 0) & np.isfinite(w)]).min()
                self.assertEqual(tiny, np.float32(np.ldexp(0.5, -127)))
                # transformers' GptOssExperts.gate_up_proj is this, transposed.
                self.assertEqual(w.transpose(0, 2, 1).shape, (E, G * 32, R))

    def test_a_pair_over_many_blocks_under_each_option(self):
        """4 MiB of float32 (four 1 MiB blocks, 64 of 64 KiB): every block
        takes its own bytes and scales."""
        e, r, g = 4, 256, 32
        blocks = rand(e * r * g * 16)
        scales = bytes(rng.integers(100, 140, e * r * g, dtype=np.uint8))
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            T.write_safetensors(os.path.join(src, "m.safetensors"),
                                [("w_blocks", "U8", (e, r, g, 16), blocks),
                                 ("w_scales", "U8", (e, r, g), scales)])
            for opt in ("", "mxfp4=f16", "mxfp4=bf16", "block_size=64K", "dtype=f16"):
                opts = dict(kv.split("=") for kv in opt.split(",") if kv)
                with self.subTest(opt), T.Mount(src, opts=opt or None) as m:
                    with open(m.path("manifest.json")) as f:
                        manifest = json.load(f)
                    self.assertEqual(T.check_source_tree(self, src, m, manifest, opts), 1)

    def test_mismatched_pairs_are_refused(self):
        for blocks, scales, shown in [((2, 3, 16), (2, 2), "[2, 3, 16] and 'w_scales' [2, 2]"),
                                      ((4, 3, 16), (2, 3), "[4, 3, 16] and 'w_scales' [2, 3]")]:
            with self.subTest(shown), tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "src")
                T.write_safetensors(os.path.join(src, "m.safetensors"),
                                    [("w_blocks", "U8", blocks, rand(int(np.prod(blocks)))),
                                     ("w_scales", "U8", scales, rand(int(np.prod(scales))))])
                mnt = os.path.join(tmp, "mnt")
                os.mkdir(mnt)
                r = T.run_tpfs("mount", src, mnt)
                if os.path.ismount(mnt):  # a failure, but leave no mount behind
                    subprocess.run(["fusermount3", "-u", mnt])
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("MXFP4 pair 'w_blocks' %s do not agree" % shown, r.stderr)


OPTION_SETS = ["", "bf16=f16", "bf16=raw", "fp8=f32", "fp8=raw", "mxfp4=f16",
               "mxfp4=bf16", "mxfp4=raw", "mxfp4=both", "dtype=f32", "dtype=f16",
               "dtype=f16,bf16=f16,fp8=f16,mxfp4=f16", "dtype=f16,mxfp4=both"]


class Options(T.FuseCase):
    @classmethod
    def prepare(cls, tmp):
        cls.src = build_mixed(tmp)

    def test_each_option_serves_what_it_says(self):
        for opt in OPTION_SETS:
            opts = dict(kv.split("=") for kv in opt.split(",") if kv)
            with self.subTest(opt), T.Mount(self.src, opts=opt or None) as m:
                with open(m.path("manifest.json")) as f:
                    manifest = json.load(f)
                for key, value in opts.items():
                    self.assertEqual(manifest["options"][key], value)
                n = T.check_source_tree(self, self.src, m, manifest, opts)
                names = set(os.listdir(m.mnt))
                mode = opts.get("mxfp4", "f32")
                self.assertEqual("w.npy" in names, mode != "raw")
                self.assertEqual("w_blocks.npy" in names, mode in ("raw", "both"))
                # 12 tensors; the pair is one (default), two (raw) or three (both)
                self.assertEqual(n, {"raw": 12, "both": 13}.get(mode, 11))

    def test_bf16_raw_is_bfloat16_bits_for_jax(self):
        with T.Mount(self.src, opts="bf16=raw") as m:
            a = np.load(m.path("bf16.npy"))
            self.assertEqual(a.dtype.str, "|V2")
            self.assertTrue((a.view("<u2").ravel() == np.arange(65536)).all())

    def test_f16_overflows_are_counted(self):
        with T.Mount(self.src, opts="dtype=f16") as m:
            a = np.load(m.path("f32.npy"))
            self.assertEqual(a.dtype, np.float16)
            self.assertEqual(list(np.isinf(a)), [False, False, True, True, True,
                                                 True, False, False])
            with open(m.path(".tpfs/stats")) as f:
                # 65520, 1e6 and -1e9 were finite (inf was already infinite).
                self.assertEqual(json.load(f)["overflows"], 3)

    def test_bad_and_conflicting_options_are_refused(self):
        for opt, want in [("bf16=f64", "option bf16=f64: valid values are f32, f16, raw"),
                          ("fp8=e4m3", "valid values are f16, f32, raw"),
                          ("mxfp4=nf4", "valid values are f32, f16, bf16, raw, both"),
                          ("dtype=f8", "valid values are auto, f32, f16"),
                          ("dtype=f16,bf16=raw", "dtype=f16 and bf16=raw conflict"),
                          ("dtype=f32,fp8=raw", "dtype=f32 and fp8=raw conflict")]:
            with self.subTest(opt), tempfile.TemporaryDirectory() as mnt:
                r = T.run_tpfs("mount", self.src, mnt, "-o", opt)
                if os.path.ismount(mnt):  # a failure, but leave no mount behind
                    subprocess.run(["fusermount3", "-u", mnt])
                self.assertNotEqual(r.returncode, 0)
                self.assertFalse(os.path.ismount(mnt))
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(want, r.stderr)


class RealFp8(T.FuseCase):
    def test_fluxml_fp8_and_bf16_tensors(self):
        """The FP8 and BF16 tensors PyTorch wrote, as each option serves them."""
        src = os.path.join(os.environ.get("TPFS_REALDATA", ""), "fluxml-nonsharded")
        if not os.path.isdir(src):
            self.skipTest("no real data")
        with tempfile.TemporaryDirectory() as tmp:
            one = os.path.join(tmp, "src")
            os.mkdir(one)
            os.symlink(os.path.join(src, "model.safetensors"),
                       os.path.join(one, "model.safetensors"))
            for opt in ("", "fp8=f32", "fp8=raw", "bf16=f16", "bf16=raw", "dtype=f32"):
                opts = dict(kv.split("=") for kv in opt.split(",") if kv)
                with self.subTest(opt), T.Mount(one, opts=opt or None) as m:
                    with open(m.path("manifest.json")) as f:
                        manifest = json.load(f)
                    kinds = {t["source_dtype"] for t in manifest["tensors"]}
                    self.assertTrue({"F8_E4M3", "F8_E5M2", "BF16"} <= kinds)
                    self.assertEqual(T.check_source_tree(self, one, m, manifest, opts), 36)
                    e4m3 = np.load(m.path("float8_e4m3fn_357.npy"))
                    self.assertEqual(e4m3.shape, (3, 5, 7))


if __name__ == "__main__":
    T.main()
