"""tpfs ls, cat and convert against the mount, the info cards against
NumPy's statistics, and the generator's presets against the real
checkpoint's figures."""

import io
import json
import math
import os
import pty
import re
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

import tpfstest as T

GEN = os.path.join(os.path.dirname(os.path.abspath(T.TPFS)), "tpfs-gen")
REAL = os.environ.get("TPFS_REALDATA", "")
rng = np.random.default_rng(11)


def special_model(src):
    """A small model with special values: every kind of element the cards
    print, NaNs, infinities, integer extremes, an empty tensor, a scalar, an
    MXFP4 pair."""
    vals = rng.standard_normal(500).astype("<f4")
    vals[[3, 70, 499]] = [np.nan, np.inf, -np.inf]
    T.write_safetensors(os.path.join(src, "m.safetensors"), [
        ("f32", "F32", (500,), vals.tobytes()),
        ("bf16", "BF16", (10, 7), (np.frombuffer(rng.standard_normal(70).astype("<f4")
                                                 .tobytes(), "<u4") >> 16)
         .astype("<u2").tobytes()),
        ("i64", "I64", (4,), np.array([-2**63, 5, 2**62, -7], "<i8").tobytes()),
        ("u64", "U64", (2,), np.array([2**64 - 1, 3], "<u8").tobytes()),
        ("b", "BOOL", (3,), bytes([1, 0, 1])),
        ("scalar", "F64", (), struct.pack("<d", 2.5)),
        ("empty", "F16", (0, 3), b""),
        ("e4m3", "F8_E4M3", (256,), bytes(range(256))),
        ("c", "C64", (6,), np.array([1 + 2j, -3.5 - 0.25j, complex(-np.inf, 1),
                                     complex(1, -np.inf), complex(np.nan, np.nan), 2j],
                                    "<c8").tobytes()),
        # Values NumPy prints positionally (1e-4 up to 1e16) or not
        ("p32", "F32", (6,), np.array([-310, 100, 1e16, 1.2345e15, 1.5e-5, 1.234e-4],
                                      "<f4").tobytes()),
        ("p64", "F64", (6,), np.array([0.1, -0.0, 1e-300, 123456789.125, 9.999e15,
                                      5e-324], "<f8").tobytes()),
        ("p16", "F16", (6,), np.array([65504, -1e-4, 6e-8, 1000, 0.5, -2], "<f2")
         .tobytes()),
        # Powers of two, where the shortest text is not the rounded one
        ("p2_16", "F16", (2,), np.array([2.0**-6, -2.0**-6], "<f2").tobytes()),
        ("p2_32", "F32", (2,), np.array([2.0**-96, 2.0**87], "<f4").tobytes()),
        ("p2_64", "F64", (2,), np.array([2.0**-1017, -2.0**-1017], "<f8").tobytes()),
        ("w_blocks", "U8", (2, 16), rng.integers(0, 256, 32, dtype=np.uint8).tobytes()),
        ("w_scales", "U8", (2,), bytes([120, 130]))])


def fixtures(root):
    """Folders to compare the tools with the mount on: a small model with
    special values, the demo preset, and every real file (each alone)."""
    out = []
    src = os.path.join(root, "special")
    special_model(src)
    out.append(src)
    demo = os.path.join(root, "demo")
    subprocess.run([GEN, demo, "--preset", "demo", "--quiet"], check=True)
    out.append(demo)
    if os.path.isdir(REAL):
        for dirpath, _, files in os.walk(REAL):
            for name in sorted(files):
                if name.endswith(".safetensors") and "sharded" not in dirpath:
                    one = os.path.join(root, "real-%d" % len(out))
                    os.mkdir(one)
                    os.symlink(os.path.join(dirpath, name), os.path.join(one, name))
                    out.append(one)
        out.append(os.path.join(REAL, "fluxml-sharded"))
    return out


def tool(*args, check=True, timeout=600, **kw):
    r = subprocess.run([T.TPFS, *args], capture_output=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("tpfs %s failed: %s" % (" ".join(args), r.stderr.decode()))
    return r


def tree_files(top, skip=()):
    out = {}
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != ".tpfs"]
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), top)
            if rel not in skip:
                out[rel] = os.path.join(dirpath, f)
    return out


class ToolsAgreeWithTheMount(T.FuseCase):
    @classmethod
    def prepare(cls, tmp):
        cls.sources = fixtures(tmp)

    def test_ls_json_cat_and_info_agree_with_the_mount(self):
        for src in self.sources:
            with self.subTest(src=os.path.basename(src)), T.Mount(src) as m:
                with open(m.path("manifest.json"), "rb") as f:
                    manifest_bytes = f.read()
                self.assertEqual(tool("ls", src, "--json").stdout, manifest_bytes)
                manifest = json.loads(manifest_bytes)
                # The mount against values decoded here from the sources, so
                # that agreeing with it (cat, cards, convert below) means
                # being right.
                T.check_source_tree(self, src, m, manifest)
                for k, t in enumerate(manifest["tensors"]):
                    card = m.path(".tpfs/info/%s.txt" % t["path"][:-len(".npy")])
                    with open(card, "rb") as f:
                        text = f.read()
                    self.assertEqual(os.stat(card).st_size, len(text))
                    self.check_card(text.decode(), np.load(m.path(t["path"])), t)
                    if k % 8:
                        continue  # the tools start a process each: a sample
                    with open(m.path(t["path"]), "rb") as f:
                        self.assertEqual(tool("cat", src, t["name"]).stdout, f.read(),
                                         t["name"])
                    self.assertEqual(tool("ls", src, t["name"]).stdout, text)

    def check_card(self, text, a, t):
        """The card's statistics against NumPy's on the same array."""
        f = dict(re.findall(r"^(\w+) +(.*?)\s*$", text, re.M))
        self.assertEqual(f["tensor"], t["name"])
        self.assertEqual(f["path"], t["path"])
        self.assertEqual(int(f["parameters"]), a.size)
        bf16 = a.dtype.kind == "V"
        if bf16:
            a = (a.view("<u2").astype("<u4") << 16).view("<f4")
        flat = a.reshape(-1)
        if a.dtype.kind == "c":
            self.assertEqual(int(f["nan"]), np.isnan(flat).sum())
            self.assertEqual(int(f["inf"]), np.isinf(flat).sum())
            self.assertEqual(f["min"], "n/a")
        values = flat.astype(np.float64) if a.dtype.kind in "fb" else flat
        finite = values[np.isfinite(values)] if a.dtype.kind in "fb" else values
        if a.dtype.kind != "c":
            self.assertEqual(int(f["nan"]), int(np.isnan(values).sum()) if a.dtype.kind == "f" else 0)
            self.assertEqual(int(f["inf"]), int(np.isinf(values).sum()) if a.dtype.kind == "f" else 0)
        if finite.size and a.dtype.kind != "c":
            if a.dtype.kind == "b":
                self.assertEqual(f["min"], str(bool(finite.min())))
            elif a.dtype.kind in "iu":
                self.assertEqual(int(f["min"]), int(finite.min()))
                self.assertEqual(int(f["max"]), int(finite.max()))
            elif not bf16:  # printed as NumPy prints them
                elem = a.dtype.type
                self.assertEqual(f["min"], str(elem(finite.min())))
                self.assertEqual(f["max"], str(elem(finite.max())))
            else:  # bfloat16: at its own precision
                elem = a.dtype.type
                self.assertEqual(elem(float(f["min"])), elem(finite.min()))
                self.assertEqual(elem(float(f["max"])), elem(finite.max()))
            mean = finite.astype(np.float64).mean()
            std = finite.astype(np.float64).std()
            # Running sums round differently from NumPy's pairwise ones:
            # agree to 1e-9 of the values' spread.
            tol = 1e-9 * (np.abs(finite.astype(np.float64)).max() + 1e-300)
            self.assertTrue(abs(float(f["mean"]) - mean) <= tol, (f["mean"], mean))
            self.assertTrue(abs(float(f["std"]) - std) <= tol, (f["std"], std))
        # The first and last values read back as the array's own.
        first = f["first"].split()
        last = f["last"].split()
        if a.dtype.kind != "c":  # a complex value prints as one token
            self.assertEqual((len(first), len(last)), (min(3, a.size),) * 2)
        def same(token, v):
            if a.dtype.kind == "b":
                return token == str(bool(v))
            if a.dtype.kind in "iu":
                return int(token) == int(v)
            if not bf16:
                return token == str(v)
            return np.array(float(token), dtype=a.dtype) == v or (np.isnan(v) and token == "nan")
        for k, token in enumerate(first):
            self.assertTrue(same(token, flat[k]), (token, flat[k]))
        for k, token in enumerate(last):
            self.assertTrue(same(token, flat[a.size - len(last) + k]), (token,))

    def test_convert_writes_what_the_mount_serves(self):
        for src in self.sources:
            with self.subTest(src=os.path.basename(src)), T.Mount(src) as m, \
                    tempfile.TemporaryDirectory() as out:
                tool("convert", src, out, "--jobs", "3")
                got = tree_files(out, skip=(".tpfs-convert", "manifest.json"))
                want = tree_files(m.mnt, skip=("manifest.json",))
                self.assertEqual(set(got), set(want))
                for rel in got:
                    with open(got[rel], "rb") as a, open(want[rel], "rb") as b:
                        self.assertEqual(a.read(), b.read(), rel)
                with open(os.path.join(out, "manifest.json")) as f:
                    written = json.load(f)
                with open(m.path("manifest.json")) as f:
                    served = json.load(f)
                section = written.pop("convert")
                self.assertEqual(written, served)
                listed = {e["path"]: e for e in section["files"]}
                self.assertEqual(set(listed), set(got))
                for rel, e in listed.items():
                    self.assertEqual(e["bytes"], os.path.getsize(got[rel]))


class Listing(unittest.TestCase):
    def test_ls_rows_and_totals_come_from_the_headers(self):
        """Parameters count values (an MXFP4 pair: 32 a scale), stored bytes
        are the data ranges, served bytes the .npy files."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            T.write_safetensors(os.path.join(src, "m.safetensors"),
                                [("a", "BF16", (3, 5), bytes(30)), ("b", "F32", (7,), bytes(28)),
                                 ("w_blocks", "U8", (2, 16), bytes(32)),
                                 ("w_scales", "U8", (2,), bytes(2))])
            out = tool("ls", src).stdout.decode()
            rows = {l.split("\t")[0]: l.split("\t") for l in out.splitlines()
                    if not l.startswith("#") and not l.startswith("NAME")}
            # blocks [G, 16] and scales [G] serve [G * 32]
            npy = {"a": (3, 5), "b": (7,), "w": (64,)}
            for name, shape in npy.items():
                want = len(T.npy_bytes(np.zeros(shape, "<f4")))
                self.assertEqual(int(rows[name][6]), want, name)
            self.assertEqual([rows[n][3] for n in ("a", "b", "w")], ["15", "7", "64"])
            self.assertEqual([rows[n][4] for n in ("a", "b", "w")], ["30", "28", "34"])
            served = sum(int(rows[n][6]) for n in rows)
            self.assertIn("# 3 tensors, 86 parameters, 92 bytes stored, {:,} bytes served"
                          .format(served), out)
            self.assertIn("# dtypes: BF16 1 F32 1 MXFP4 1", out)

    def test_ls_tensor_json_is_the_card_as_an_object(self):
        """`tpfs ls SRC TENSOR --json`: the tensor's manifest record and the
        card's values, each against NumPy's on the array decoded here from
        the source, and against the text card."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            special_model(src)
            _, infos = T.read_safetensors(os.path.join(src, "m.safetensors"))
            manifest = json.loads(tool("ls", src, "--json").stdout)
            for record in manifest["tensors"]:
                name = record["name"]
                with self.subTest(name):
                    if "sources" in record:
                        b, sc = (infos[p["name"]] for p in record["sources"])
                        a = T.expected_mxfp4(b["raw"], b["shape"], sc["raw"], sc["shape"])
                    else:
                        i = infos[name]
                        a = T.expected_array(i["dtype"], i["shape"], i["raw"])
                    r = tool("ls", src, name, "--json")
                    self.assertEqual(r.stdout.count(b"\n"), 1)  # one object, one line
                    card = json.loads(r.stdout)
                    text = tool("ls", src, name).stdout.decode()
                    self.check_json_card(card, record, a, text)

    def check_json_card(self, card, record, a, text):
        own = {k: card.pop(k) for k in ("parameters", "bytes", "stats")}
        self.assertEqual(card, record)
        self.assertEqual((own["parameters"], own["bytes"]), (a.size, a.nbytes))
        st = own["stats"]
        self.assertEqual(sorted(st), ["first", "inf", "last", "max", "mean", "min", "nan",
                                      "std"])
        if a.dtype.kind == "V":  # bfloat16 bits: their values
            a = (a.view("<u2").astype("<u4") << 16).view("<f4")
        flat = a.reshape(-1)
        kind = a.dtype.kind

        def value(v):
            """A JSON value of the card as a number."""
            if isinstance(v, str):
                self.assertIn(v, ("nan", "inf", "-inf"))
                return float(v)
            return v

        def same(v, want):
            if kind == "c":
                return len(v) == 2 and same_float(value(v[0]), want.real, np.float32) \
                    and same_float(value(v[1]), want.imag, np.float32)
            if kind == "b":
                return v is bool(want)
            if kind in "iu":
                return isinstance(v, int) and v == int(want)
            return same_float(value(v), want, a.dtype.type)

        def same_float(x, want, elem):
            # read back at the element's precision: the same value, sign
            # of zero and NaN included
            x = elem(x)
            return (np.isnan(x) and np.isnan(want)) or \
                (x == want and np.signbit(x) == np.signbit(want))

        self.assertEqual(len(st["first"]), min(3, a.size))
        self.assertEqual(len(st["last"]), min(3, a.size))
        for k, v in enumerate(st["first"]):
            self.assertTrue(same(v, flat[k]), (v, flat[k]))
        for k, v in enumerate(st["last"]):
            self.assertTrue(same(v, flat[a.size - len(st["last"]) + k]), (v,))
        numeric = flat.astype(np.complex128 if kind == "c" else np.float64)
        self.assertEqual((st["nan"], st["inf"]),
                         (int(np.isnan(numeric).sum()), int(np.isinf(numeric).sum())))
        finite = flat[np.isfinite(numeric)]
        if kind == "c" or finite.size == 0:
            self.assertEqual([st[k] for k in ("min", "max", "mean", "std")], [None] * 4)
        else:
            self.assertTrue(same(st["min"], finite.min()), (st["min"], finite.min()))
            self.assertTrue(same(st["max"], finite.max()), (st["max"], finite.max()))
            wide = finite.astype(np.float64)
            tol = 1e-9 * (np.abs(wide).max() + 1e-300)
            self.assertTrue(abs(st["mean"] - wide.mean()) <= tol, (st["mean"], wide.mean()))
            self.assertTrue(abs(st["std"] - wide.std()) <= tol, (st["std"], wide.std()))
        # The same values as the text card.
        f = dict(re.findall(r"^(\w+) +(.*?)\s*$", text, re.M))
        for k in ("min", "max", "mean", "std"):
            if st[k] is None:
                self.assertEqual(f[k], "n/a")
            elif kind == "b":
                self.assertEqual(f[k], str(st[k]))
            elif kind in "iu" and k in ("min", "max"):
                self.assertEqual(int(f[k]), st[k], k)
            else:
                self.assertEqual(float(f[k]), st[k], k)
        self.assertEqual((int(f["nan"]), int(f["inf"])), (st["nan"], st["inf"]))
        for k in ("first", "last"):
            tokens = f.get(k, "").split()
            if kind == "c":
                got = [complex(t) for t in tokens]
                want = [complex(value(x), value(y)) for x, y in st[k]]
                self.assertEqual(str(got), str(want), k)  # NaNs as text
            elif kind == "b":
                self.assertEqual(tokens, [str(v) for v in st[k]], k)
            else:
                self.assertEqual([str(float(t)) for t in tokens],
                                 [str(float(value(v))) for v in st[k]], k)

    def test_the_table_is_in_natural_order_and_the_json_in_the_mounts(self):
        """Digit runs by value, folder by folder (file by file with
        by_file); --json keeps manifest.json's order (names by their bytes)
        byte for byte."""
        names = ["layers.10.w", "layers.2.w", "layers.1.w", "layers.1.w_bias", "a01", "a1",
                 "a.1", "w", "w1", "w_bias", "x9y", "x10", "x009z", "1st", "b0", "b00"]
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            files = {"m.safetensors": names, "sub10/x.safetensors": ["k10", "k9"],
                     "sub2/x.safetensors": ["k10", "k9"], "z2.safetensors": ["y"]}
            for rel, tensors in files.items():
                T.write_safetensors(os.path.join(src, rel),
                                    [(n, "U8", (1,), b"\0") for n in tensors])

            def key(s):
                parts = re.split(r"([0-9]+)", s, flags=re.ASCII)
                return [int(p) if k % 2 else p for k, p in enumerate(parts)], s.encode()

            def listed(*opts):
                out = tool("ls", src, *opts).stdout.decode().splitlines()
                return [tuple(l.split("\t")[i] for i in (7, 0)) for l in out[1:]
                        if not l.startswith("#")]
            got = listed()
            want = sorted(((rel, n) for rel, ns in files.items() for n in ns),
                          key=lambda r: (key(os.path.dirname(r[0])), key(r[1])))
            self.assertEqual(got, want)
            self.assertLess(got.index(("m.safetensors", "layers.2.w")),
                            got.index(("m.safetensors", "layers.10.w")))
            got = listed("-o", "by_file")
            want = sorted(((rel, n) for rel, ns in files.items() for n in ns),
                          key=lambda r: (key(r[0]), key(r[1])))
            self.assertEqual(got, want)
            # The JSON listing is the manifest: folder by folder, names in
            # byte order.
            manifest = json.loads(tool("ls", src, "--json").stdout)
            root = [t["name"] for t in manifest["tensors"] if t["source_file"] == "m.safetensors"]
            self.assertEqual(root, sorted(names, key=lambda n: n.encode()))

    def test_h_shows_sizes_as_ls_h_does(self):
        """-h: the stored and served bytes as GNU ls -h shows a file of
        that size (1024-based, rounded up), units spelled KiB, MiB..."""
        sizes = [0, 1, 1023, 1024, 1025, 1536, 10239, 10240, 1048575, 1048576, 1048577,
                 5 * 2**30 + 1, 2**40 - 1]
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            os.mkdir(src)
            # Only headers are read: the data is a hole.
            header = {"t%02d" % k: {"dtype": "U8", "shape": [n],
                                    "data_offsets": [sum(sizes[:k]), sum(sizes[:k + 1])]}
                      for k, n in enumerate(sizes)}
            text = json.dumps(header).encode()
            with open(os.path.join(src, "m.safetensors"), "wb") as f:
                f.write(struct.pack("<Q", len(text)) + text)
                f.truncate(8 + len(text) + sum(sizes))

            def ls_h(n):
                path = os.path.join(tmp, "probe")
                with open(path, "wb") as f:
                    f.truncate(n)
                r = subprocess.run(["ls", "-l", "--human-readable", path], check=True,
                                   capture_output=True, text=True)
                v = r.stdout.split()[4]
                return v + " B" if v[-1].isdigit() else v[:-1] + " " + v[-1] + "iB"

            def rows(*opts):
                out = tool("ls", src, *opts).stdout.decode().splitlines()
                return [l.split("\t") for l in out[1:] if not l.startswith("#")], out[-2]
            plain, _ = rows()
            human, totals = rows("-h")
            self.assertEqual([r[4] for r in plain], [str(n) for n in sizes])
            for p, h in zip(plain, human):
                self.assertEqual((h[4], h[6]), (ls_h(int(p[4])), ls_h(int(p[6]))), p[0])
                self.assertEqual(h[:4] + h[5:6] + h[7:], p[:4] + p[5:6] + p[7:])
            self.assertEqual(totals, "# %d tensors, %s parameters, %s stored, %s served" % (
                len(sizes), "{:,}".format(sum(sizes)), ls_h(sum(sizes)),
                ls_h(sum(int(p[6]) for p in plain))))
            # -h is for the table; --help is the help
            for extra in (["--json"], ["t00"]):
                r = tool("ls", src, "-h", *extra, check=False)
                self.assertEqual(r.returncode, 2)
                self.assertIn("-h sizes the table's bytes", r.stderr.decode())
            r = tool("ls", "--help")
            self.assertIn("-h, --human-readable", r.stdout.decode())

    def test_a_source_without_tensors_says_why(self):
        """No .safetensors file at all, and .safetensors files that hold no
        tensor, are different mistakes and are told apart."""
        rest = ": the mount shows only its other files"
        with tempfile.TemporaryDirectory() as tmp:
            def case(name, files):
                src = os.path.join(tmp, name)
                os.makedirs(src)
                with open(os.path.join(src, "config.json"), "w") as f:
                    f.write("{}")
                for rel in files:  # a header with no tensor in it
                    T.write_safetensors(os.path.join(src, rel), [], metadata={"a": "b"})
                return src
            cases = [
                (case("none", []), "holds no .safetensors file" + rest),
                (case("one", ["model.safetensors"]),
                 "has 1 .safetensors file, which holds no tensor" + rest),
                (case("three", ["a.safetensors", "b.safetensors", "sub/c.safetensors"]),
                 "has 3 .safetensors files, none of which holds a tensor" + rest),
                (os.path.join(tmp, "one", "model.safetensors"),
                 "holds no tensor: the mount shows only manifest.json"),
            ]
            for src, want in cases:
                with self.subTest(src):
                    r = tool("ls", src)
                    self.assertEqual(r.stderr.decode(), "tpfs: warning: %s %s\n" % (src, want))
                    self.assertIn("# 0 tensors", r.stdout.decode())
            # The daemon says the same.
            src, want = cases[2]
            if T.fuse_available():
                with T.Mount(src) as m:
                    # .safetensors files are never shown themselves
                    self.assertEqual(sorted(os.listdir(m.mnt)),
                                     [".tpfs", "config.json", "manifest.json", "sub"])
                    self.assertIn("tpfs: warning: %s %s\n" % (src, want), m.stderr())

    def test_each_folder_is_walked_once_at_its_own_place(self):
        """Links to folders are not followed: a folder is shown at its own
        place only. Forty folders, each with two links to the next, make
        2^40 paths through links; the walk meets each link once, says where
        it leads, and shows each folder once (it used to walk every path)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            n = 40
            for i in range(n):
                d = os.path.join(src, "d%d" % i)
                T.write_safetensors(os.path.join(d, "m.safetensors"),
                                    [("t%d" % i, "U8", (1,), b"x")])
                for link in ("a", "b"):
                    os.symlink("../d%d" % (i + 1), os.path.join(d, link))
            # a guard, not a measure: the walk used to take for ever
            r = tool("ls", src, "--json", timeout=60)
            manifest = json.loads(r.stdout)
            self.assertEqual(sorted(t["path"] for t in manifest["tensors"]),
                             sorted("d%d/t%d.npy" % (i, i) for i in range(n)))
            want = ["tpfs: warning: skipping %s/d%d/%s: a link to the folder %s/d%d (a "
                    "folder is shown at its own place only)" % (src, i, link, src, i + 1)
                    for i in range(n - 1) for link in ("a", "b")]
            want += ["tpfs: warning: skipping %s/d%d/%s: No such file or directory"
                     % (src, n - 1, link) for link in ("a", "b")]
            self.assertEqual(sorted(r.stderr.decode().splitlines()), sorted(want))

    def test_a_file_swapped_for_a_fifo_is_never_opened_for_reading(self):
        """config.json is replaced by a FIFO right after the walk examined it
        (swap_after_stat.c does it every time; a user who may write in the
        source can at any moment): tpfs refuses it without opening it for
        reading, which for a device could be the harm itself. A writer blocked
        in opening the FIFO tells: it goes on once anyone opens it to read."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            small = [("w", "U8", (1,), b"x")]
            T.write_safetensors(os.path.join(src, "model.safetensors"), small)
            with open(os.path.join(src, "config.json"), "w") as f:
                f.write("{}")
            fifo = os.path.join(tmp, "fifo")
            os.mkfifo(fifo)
            writer = subprocess.Popen(
                [sys.executable, "-c", "import os, sys; print('ready', flush=True); "
                 "os.open(sys.argv[1], os.O_WRONLY); print('opened', flush=True)", fifo],
                stdout=subprocess.PIPE, text=True)
            try:
                self.assertEqual(writer.stdout.readline(), "ready\n")
                # asleep: in the open, waiting for a reader
                deadline = time.time() + 20
                while open("/proc/%d/stat" % writer.pid).read().split(") ")[1][0] != "S":
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.01)
                env = dict(os.environ, LD_PRELOAD=os.environ["TPFS_SWAP_AFTER_STAT"],
                           TPFS_SWAP_NAME="config.json", TPFS_SWAP_WITH=fifo,
                           ASAN_OPTIONS="verify_asan_link_order=0")
                r = tool("ls", src, check=False, env=env, timeout=60)
                self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(src, "config.json"))
                                              .st_mode), "the swap did not happen")
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr.decode(), "tpfs ls: %s/config.json: no longer a "
                                 "regular file\n" % src)
                with self.assertRaises(subprocess.TimeoutExpired,
                                       msg="tpfs opened the FIFO for reading"):
                    writer.wait(timeout=2)
            finally:
                # let the writer go
                where = fifo if os.path.exists(fifo) else os.path.join(src, "config.json")
                fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK)
                writer.communicate(timeout=20)
                os.close(fd)

    def test_names_with_control_bytes_are_written_escaped(self):
        """A file or tensor name's control bytes reach no terminal: the
        table (piped or on a terminal), the info cards and the messages
        write them %XX, as the README says, and every line stays one line."""
        def plain(data, what):
            self.assertTrue(data.endswith(b"\n"), what)
            lines = data[:-1].split(b"\n")
            for line in lines:
                self.assertFalse(re.search(rb"[\x00-\x1f\x7f]", line), (what, line))
            return [line.decode() for line in lines]

        name = "a\x1b[31mRED\x1b[0m\nfake"
        shown = "a%1B[31mRED%1B[0m%0Afake"
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            T.write_safetensors(os.path.join(src, "evil\ntpfs: fake line.safetensors"),
                                [(name, "F32", (2,), struct.pack("<2f", 1, 2))])
            T.write_safetensors(os.path.join(src, "dir\x07bell", "m.safetensors"),
                                [("w", "U8", (1,), b"x")])
            with open(os.path.join(src, "dir\x07bell", "notes\x1b[2J.txt"), "w") as f:
                f.write("passed through")
            # the table, piped: tab-separated cells
            r = tool("ls", src)
            self.assertEqual(r.stderr, b"")
            self.assertTrue(r.stdout.endswith(b"\n"))
            cells = [plain(c + b"\n", "ls")[0] for line in r.stdout[:-1].split(b"\n")
                     for c in line.split(b"\t")]
            self.assertEqual(len(cells), 8 * 3 + 2)  # a heading, 2 rows, 2 totals
            rows = {cells[i]: cells[i:i + 8] for i in range(0, 8 * 3, 8)}
            self.assertEqual(rows[shown][7], "evil%0Atpfs: fake line.safetensors")
            self.assertEqual(rows["w"][7], "dir%07bell/m.safetensors")
            # the table on a terminal: aligned
            master, slave = pty.openpty()
            p = subprocess.Popen([T.TPFS, "ls", src], stdout=slave, stderr=slave)
            os.close(slave)
            out = b""
            while True:
                try:
                    got = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not got:
                    break
                out += got
            os.close(master)
            self.assertEqual(p.wait(timeout=60), 0)
            lines = plain(out.replace(b"\r\n", b"\n"), "ls on a terminal")
            self.assertTrue(any(l.startswith(shown + "  ") and
                                l.endswith("  evil%0Atpfs: fake line.safetensors")
                                for l in lines), lines)
            # the cards
            card = tool("ls", src, name).stdout
            text = plain(card, "card")
            self.assertEqual(text[0], "tensor      " + shown)
            self.assertEqual(text[1], "path        " + shown + ".npy")
            self.assertTrue(text[2].startswith("source      evil%0Atpfs: fake line.safetensors: '"
                                               + shown + "' F32 [2]"), text[2])
            text = plain(tool("ls", src, "dir\x07bell/w").stdout, "card")
            self.assertEqual(text[1], "path        dir%07bell/w.npy")
            self.assertTrue(text[2].startswith("source      dir%07bell/m.safetensors: 'w'"))
            # the messages
            for cmd in ("ls", "cat"):
                r = tool(cmd, src, "no\x1bsuch\nthing", check=False)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(plain(r.stderr, cmd),
                                 ["tpfs %s: %s: no tensor 'no%%1Bsuch%%0Athing' ('tpfs ls %s' "
                                  "lists them)" % (cmd, src, src)])
            r = tool("convert", src, os.path.join(tmp, "out"), "--jobs", "1")
            self.assertIn("wrote dir%07bell/notes%1B[2J.txt (14 B)", plain(r.stdout, "convert"))
            if T.fuse_available():
                with T.Mount(src) as m:
                    with open(m.path(".tpfs/info/%s.txt" % shown), "rb") as f:
                        self.assertEqual(f.read(), card)

    def test_cards_decode_what_each_option_serves(self):
        """bf16=raw serves bfloat16 bits: the card still shows their values."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            vals = np.array([1.5, -2.0, 3.0, 0.25], "<f4")
            raw = (vals.view("<u4") >> 16).astype("<u2").tobytes()
            T.write_safetensors(os.path.join(src, "m.safetensors"), [("w", "BF16", (4,), raw)])
            for opt in ("bf16=raw", "bf16=f16", "bf16=f32"):
                card = tool("ls", src, "w", "-o", opt).stdout.decode()
                f = dict(re.findall(r"^(\w+) +(.*?)\s*$", card, re.M))
                self.assertEqual((f["min"], f["max"], f["mean"]), ("-2.0", "3.0", "0.6875"), opt)


class Convert(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.tmp.name, "model")
        # Enough data that a conversion takes a moment: 48 tensors.
        subprocess.run([GEN, self.src, "--quiet", *sum(
            (["--tensor", "t%02d=bf16:512x1024" % i] for i in range(48)), [])], check=True)

    def tearDown(self):
        self.tmp.cleanup()

    def test_interrupted_run_is_resumed(self):
        out = os.path.join(self.tmp.name, "out")
        p = subprocess.Popen([T.TPFS, "convert", self.src, out, "--jobs", "1",
                              "-o", "cache_size=0"], stdout=subprocess.PIPE)
        # Kill it once a few files are done, mid-way.
        deadline = time.time() + 60
        while time.time() < deadline:
            done = [f for f in os.listdir(out) if f.endswith(".npy")] \
                if os.path.isdir(out) else []
            if len(done) >= 5:
                break
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        partial = [f for f in os.listdir(out) if f.endswith(".npy")]
        self.assertGreaterEqual(len(partial), 5)
        self.assertLess(len(partial), 48, "conversion finished before the kill")
        self.assertFalse(os.path.exists(os.path.join(out, "manifest.json")))
        # A finished name never holds a truncated file.
        for f in partial:
            self.assertEqual(os.path.getsize(os.path.join(out, f)), 128 + 512 * 1024 * 4)
        r = tool("convert", self.src, out, "--resume")
        summary = r.stdout.decode().strip().splitlines()[-1]
        kept = int(re.search(r"(\d+) kept", summary).group(1))
        self.assertGreaterEqual(kept, len(partial) - 1)  # the last one may be half done
        self.assertNotIn(".tpfs-partial", " ".join(os.listdir(out)))
        # The same tree as an uninterrupted run.
        clean = os.path.join(self.tmp.name, "clean")
        tool("convert", self.src, clean)
        a = tree_files(out, skip=(".tpfs-convert",))
        b = tree_files(clean, skip=(".tpfs-convert",))
        self.assertEqual(set(a), set(b))
        for rel in a:
            with open(a[rel], "rb") as x, open(b[rel], "rb") as y:
                self.assertEqual(x.read(), y.read(), rel)
        # Running again keeps everything, and a damaged file is redone.
        with open(os.path.join(out, "t07.npy"), "r+b") as f:
            f.seek(1000)
            f.write(b"\xff")
        r = tool("convert", self.src, out)
        self.assertIn("1 files written, 47 kept", r.stdout.decode())

    def on_a_terminal(self, out, *args):
        """Run convert into out with its standard error on a terminal:
        its exit status, its standard output, and each state of the line
        the terminal showed."""
        master, slave = pty.openpty()
        p = subprocess.Popen([T.TPFS, "convert", self.src, out, *args],
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        shown = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not data:
                break
            shown += data
        os.close(master)
        stdout = p.stdout.read().decode()
        p.stdout.close()
        states = [l for l in re.split(r"[\r\n]", shown.decode()) if l]
        return p.wait(), stdout, states

    def test_the_progress_line_counts_in_mib_and_says_when_every_file_was_kept(self):
        out = os.path.join(self.tmp.name, "out")
        total = "%.1f" % (48 * len(T.npy_bytes(np.zeros((512, 1024), "<f4"))) / 2**20)
        rc, stdout, states = self.on_a_terminal(out)
        self.assertEqual(rc, 0)
        line = re.compile(r"\[[# ]{30}\] (\d+\.\d) / (\d+\.\d) MiB  (\d+\.\d MiB/s  ETA "
                          r"(--:--|\d+:\d\d|\d+:\d\d:\d\d)  files (\d+)/48|all 48 files already "
                          r"converted, kept) *")
        for state in states:
            self.assertRegex(state, line)
            self.assertEqual(line.fullmatch(state).group(2), total)
        # No estimate before there is one to make
        self.assertEqual(line.fullmatch(states[0]).group(4), "--:--")
        self.assertEqual(line.fullmatch(states[-1]).group(1, 5), (total, "48"))
        self.assertRegex(stdout, r"48 files written, 0 kept .* in \d+\.\d s \(\d+\.\d MiB/s\)\n$")
        # Again: every file is kept, which the end says instead of a rate
        rc, stdout, states = self.on_a_terminal(out)
        self.assertEqual(rc, 0)
        self.assertEqual(states[-1].rstrip(), "[%s] %s / %s MiB  all 48 files already converted, "
                         "kept" % ("#" * 30, total, total))
        self.assertIn("all 48 files already converted, kept;", stdout)
        self.assertNotIn("/s", stdout)

    def test_sigint_and_sigterm_stop_it_saying_what_it_left(self):
        """The file being written is dropped, the rest stays, one line says
        so; the exit status is 128 and the signal's number; running the
        same command again finishes the job."""
        npy = len(T.npy_bytes(np.zeros((512, 1024), "<f4")))
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(sig.name):
                out = os.path.join(self.tmp.name, "out-" + sig.name)
                p = subprocess.Popen([T.TPFS, "convert", self.src, out, "--jobs", "1",
                                      "-o", "cache_size=0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                deadline = time.time() + 60
                while time.time() < deadline and not (os.path.isdir(out) and len(
                        [f for f in os.listdir(out) if f.endswith(".npy")]) >= 3):
                    time.sleep(0.005)
                p.send_signal(sig)
                _, stderr = p.communicate(timeout=60)
                self.assertEqual(p.returncode, 128 + sig)
                lines = stderr.decode().splitlines()
                self.assertEqual(len(lines), 1, lines)
                m = re.fullmatch(r"tpfs convert: stopped by %s: (\d+) of 48 files done, "
                                 r"partial files removed; run the same command again to "
                                 r"finish" % sig.name, lines[0])
                self.assertTrue(m, lines[0])
                done = [f for f in os.listdir(out) if f.endswith(".npy")]
                self.assertEqual(int(m.group(1)), len(done))
                self.assertLess(len(done), 48, "conversion finished before the signal")
                for f in done:
                    self.assertEqual(os.path.getsize(os.path.join(out, f)), npy)
                self.assertEqual([f for f in os.listdir(out) if f.endswith(".tpfs-partial")],
                                 [])
                self.assertFalse(os.path.exists(os.path.join(out, "manifest.json")))
                r = tool("convert", self.src, out)
                self.assertIn("%d files written, %d kept" % (48 - len(done), len(done)),
                              r.stdout.decode())

    def start_and_kill(self, out, args, files_written):
        """Start a convert into out and kill it once files_written .npy
        files in out are newer than the call (0: kill at once)."""
        t0 = time.time()
        p = subprocess.Popen([T.TPFS, "convert", self.src, out, "--jobs", "1",
                              "-o", "cache_size=0", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = t0 + 60
        while files_written and time.time() < deadline:
            fresh = [f for f in os.listdir(out) if f.endswith(".npy") and
                     os.path.getmtime(os.path.join(out, f)) >= t0]
            if len(fresh) >= files_written:
                break
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def test_a_cut_rerun_never_looks_complete_and_forgets_nothing(self):
        out = os.path.join(self.tmp.name, "out")
        tool("convert", self.src, out)
        self.assertTrue(os.path.exists(os.path.join(out, "manifest.json")))
        # Cut short at once: the next run still keeps every file.
        self.start_and_kill(out, [], 0)
        r = tool("convert", self.src, out)
        self.assertIn("all 48 files already converted, kept", r.stdout.decode())
        # Other options, cut short after a few files: no manifest says the
        # output is whole while its files disagree.
        self.start_and_kill(out, ["-o", "bf16=f16"], 3)
        self.assertFalse(os.path.exists(os.path.join(out, "manifest.json")))
        r = tool("convert", self.src, out, "-o", "bf16=f16")
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual({t["dtype"] for t in manifest["tensors"]}, {"<f2"})
        for t in manifest["tensors"]:
            self.assertEqual(np.load(os.path.join(out, t["path"])).dtype, np.float16)
        with open(os.path.join(out, ".tpfs-convert")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "tpfs-convert 2")
        self.assertEqual(len(lines), 1 + 48)

    def test_what_an_earlier_run_wrote_and_this_one_does_not_is_removed(self):
        out = os.path.join(self.tmp.name, "out")
        limit = 5 * (128 + 512 * 1024 * 4) + 100
        tool("convert", self.src, out, "--shard-size", str(limit))
        with open(os.path.join(out, "notes.txt"), "w") as f:
            f.write("mine")
        with open(os.path.join(out, "shard_000", "t00.npy"), "r+b") as f:
            f.seek(200)
            f.write(b"\x01")
        r = tool("convert", self.src, out)
        self.assertIn("removed 47 files an earlier run wrote", r.stdout.decode())
        self.assertIn("left %s in place: it changed" %
                      os.path.join(out, "shard_000", "t00.npy"), r.stderr.decode())
        self.assertEqual(sorted(d for d in os.listdir(out) if not d.endswith(".npy")),
                         [".tpfs-convert", "manifest.json", "notes.txt", "shard_000"])
        self.assertEqual(os.listdir(os.path.join(out, "shard_000")), ["t00.npy"])
        self.assertEqual(len([f for f in os.listdir(out) if f.endswith(".npy")]), 48)

    def test_out_inside_the_source_and_resume_of_nothing_are_refused(self):
        inside = os.path.join(self.src, "npy")
        r = tool("convert", self.src, inside, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is inside the source folder", r.stderr.decode())
        self.assertFalse(os.path.exists(inside))
        # ".." after a folder that does not exist yet still lands inside
        sneaky = os.path.join(self.tmp.name, "nope", "..", "model", "out")
        r = tool("convert", self.src, sneaky, check=False)
        self.assertIn("is inside the source folder", r.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "nope")))
        fresh = os.path.join(self.tmp.name, "fresh")
        r = tool("convert", self.src, fresh, "--resume", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--resume: %s holds no earlier tpfs convert output" % fresh,
                      r.stderr.decode())

    def test_runs_killed_at_random_moments_end_as_one_clean_run(self):
        """Whatever moment runs with other options are killed at, the run
        that completes leaves exactly what a clean run into a new folder
        does: no stray file, folder or temporary file."""
        out = os.path.join(self.tmp.name, "out")
        clean = os.path.join(self.tmp.name, "clean")
        tool("convert", self.src, clean, "--shard-size", "7M")
        rnd = np.random.default_rng(5)
        option_sets = [["--shard-size", "5M"], ["-o", "bf16=f16"], ["-o", "dtype=f16"],
                       ["--shard-size", "3M", "-o", "by_file"], []]
        for k in range(15):
            args = option_sets[k % len(option_sets)]
            p = subprocess.Popen([T.TPFS, "convert", self.src, out, "--jobs", "2", *args],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(float(rnd.uniform(0, 0.4)))
            p.send_signal(signal.SIGKILL)
            p.wait()
        tool("convert", self.src, out, "--shard-size", "7M")
        def listing(top):
            return sorted(os.path.relpath(os.path.join(d, x), top)
                          for d, dirs, files in os.walk(top) for x in dirs + files)
        self.assertEqual(listing(out), listing(clean))
        for rel in tree_files(clean, skip=(".tpfs-convert",)):
            with open(os.path.join(out, rel), "rb") as x, \
                    open(os.path.join(clean, rel), "rb") as y:
                self.assertEqual(x.read(), y.read(), rel)

    def test_names_convert_keeps_for_itself_are_refused_in_the_source(self):
        for name in ("notes.tpfs-partial", ".tpfs-convert"):
            with self.subTest(name):
                with open(os.path.join(self.src, name), "w") as f:
                    f.write("x")
                out = os.path.join(self.tmp.name, "out-" + name)
                r = tool("convert", self.src, out, check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("cannot write %s: convert keeps the names" % name,
                              r.stderr.decode())
                self.assertFalse(os.path.exists(out))
                os.unlink(os.path.join(self.src, name))
        # A source file where a shard folder puts a tensor.
        os.mkdir(os.path.join(self.src, "shard_000"))
        with open(os.path.join(self.src, "shard_000", "t00.npy"), "w") as f:
            f.write("x")
        r = tool("convert", self.src, os.path.join(self.tmp.name, "o"), "--shard-size", "5M",
                 check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("two things of the output would be shard_000/t00.npy", r.stderr.decode())

    def test_odd_file_names_are_kept_on_a_second_run(self):
        for name in (" lead", "a b", "50%", "tab\tname", "new\nline"):
            with open(os.path.join(self.src, name), "w") as f:
                f.write(name)
        out = os.path.join(self.tmp.name, "out")
        tool("convert", self.src, out)
        r = tool("convert", self.src, out)
        self.assertIn("all 53 files already converted, kept", r.stdout.decode())
        with open(os.path.join(out, " lead")) as f:
            self.assertEqual(f.read(), " lead")

    def test_an_out_cut_before_its_first_journal_is_still_usable(self):
        out = os.path.join(self.tmp.name, "out")
        os.mkdir(out)
        with open(os.path.join(out, ".tpfs-convert.tpfs-partial"), "w") as f:
            f.write("tpfs-con")
        tool("convert", self.src, out)
        self.assertTrue(os.path.exists(os.path.join(out, "manifest.json")))
        self.assertFalse(os.path.exists(os.path.join(out, ".tpfs-convert.tpfs-partial")))

    def test_a_source_changed_in_place_is_converted_again(self):
        out = os.path.join(self.tmp.name, "out")
        tool("convert", self.src, out)
        path = os.path.join(self.src, "model.safetensors")
        _, infos = T.read_safetensors(path)
        # Other bytes in place: the header, sizes and offsets stay the same.
        with open(path, "r+b") as f:
            for i in infos.values():
                f.seek(i["begin"])
                f.write(bytes(reversed(i["raw"])))
        r = tool("convert", self.src, out)
        self.assertIn("48 files written, 0 kept", r.stdout.decode())
        for n, i in infos.items():
            got = np.load(os.path.join(out, n + ".npy"))
            want = T.expected_array(i["dtype"], i["shape"], bytes(reversed(i["raw"])))
            self.assertTrue(T.same_values(got, want), n)

    def test_shard_size_is_respected(self):
        out = os.path.join(self.tmp.name, "out")
        limit = 5 * (128 + 512 * 1024 * 4) + 100  # five tensors a shard
        tool("convert", self.src, out, "--shard-size", str(limit))
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        shards = {}
        for t in manifest["tensors"]:
            shard, _, rest = t["path"].partition("/")
            self.assertRegex(shard, r"^shard_\d{3}$")
            size = os.path.getsize(os.path.join(out, t["path"]))
            self.assertEqual(size, t["npy_bytes"])
            shards[shard] = shards.get(shard, 0) + size
        self.assertEqual(len(shards), 10)  # 48 tensors, 5 a shard
        self.assertTrue(all(v <= limit for v in shards.values()))
        # A tensor bigger than the limit gets a shard of its own.
        out2 = os.path.join(self.tmp.name, "out2")
        tool("convert", self.src, out2, "--shard-size", "1M")
        self.assertEqual(len([d for d in os.listdir(out2) if d.startswith("shard_")]), 48)

    def test_non_empty_folder_is_refused(self):
        out = os.path.join(self.tmp.name, "busy")
        os.mkdir(out)
        with open(os.path.join(out, "thesis.tex"), "w") as f:
            f.write("precious")
        r = tool("convert", self.src, out, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not empty and holds no earlier tpfs convert output", r.stderr.decode())
        self.assertEqual(os.listdir(out), ["thesis.tex"])

    def victim(self, name):
        """A file outside OUT, which convert must leave as it is."""
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write("precious " + name)
        return path

    def assert_untouched(self, *victims):
        for path in victims:
            with open(path) as f:
                self.assertEqual(f.read(), "precious " + os.path.basename(path))

    def test_links_planted_at_temporary_names_are_never_followed(self):
        """Someone who could put a link in OUT where convert writes a
        temporary file must not make it write through the link."""
        out = os.path.join(self.tmp.name, "out")
        os.mkdir(out)
        journal = self.victim("journal-victim")
        os.symlink(journal, os.path.join(out, ".tpfs-convert.tpfs-partial"))
        tool("convert", self.src, out)
        self.assert_untouched(journal)
        npy, manifest = self.victim("npy-victim"), self.victim("manifest-victim")
        os.symlink(npy, os.path.join(out, "t00.npy.tpfs-partial"))
        os.symlink(manifest, os.path.join(out, "manifest.json.tpfs-partial"))
        tool("convert", self.src, out, "-o", "bf16=f16")
        self.assert_untouched(npy, manifest)
        for name in ("t00.npy", "manifest.json", ".tpfs-convert"):
            self.assertFalse(os.path.islink(os.path.join(out, name)), name)
        self.assertEqual(np.load(os.path.join(out, "t00.npy")).dtype, np.float16)
        self.assertEqual([f for f in os.listdir(out) if f.endswith(".tpfs-partial")], [])

    def test_a_folder_of_out_replaced_by_a_link_is_not_followed(self):
        """An earlier run's folder swapped for a link to another folder:
        removing what that run wrote must not remove files there."""
        out = os.path.join(self.tmp.name, "out")
        tool("convert", self.src, out, "--shard-size", "5M")
        elsewhere = os.path.join(self.tmp.name, "elsewhere")
        os.rename(os.path.join(out, "shard_000"), elsewhere)
        os.symlink(elsewhere, os.path.join(out, "shard_000"))
        partial = os.path.join(elsewhere, "t01.npy.tpfs-partial")
        with open(partial, "w") as f:
            f.write("precious")
        before = sorted(os.listdir(elsewhere))
        r = tool("convert", self.src, out, check=False)
        self.assertEqual(sorted(os.listdir(elsewhere)), before)
        self.assertIn("%s: a symbolic link" % os.path.join(out, "shard_000"), r.stderr.decode())

    def test_folders_above_out_are_made_and_links_above_it_followed(self):
        """OUT's missing folders are made as by mkdir -p, through a link
        the caller names above OUT; OUT itself may not be a link."""
        real = os.path.join(self.tmp.name, "real")
        os.mkdir(real)
        os.symlink(real, os.path.join(self.tmp.name, "link"))
        tool("convert", self.src, os.path.join(self.tmp.name, "link", "a", "b", "out"))
        out = os.path.join(real, "a", "b", "out")
        self.assertTrue(os.path.isfile(os.path.join(out, "manifest.json")))
        link = os.path.join(self.tmp.name, "out-link")
        os.symlink(out, link)
        r = tool("convert", self.src, link, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s: a symbolic link: " % link, r.stderr.decode())

    def test_journal_paths_that_leave_out_are_refused(self):
        """A journal line naming a path outside OUT (or one that is not a
        plain path under it) is refused, and nothing is removed."""
        out = os.path.join(self.tmp.name, "out")
        tool("convert", self.src, out)
        journal = os.path.join(out, ".tpfs-convert")
        with open(journal) as f:
            good = f.read()
        fp = good.splitlines()[1].split()[0]
        victim = self.victim("victim.tpfs-partial")
        rel = "../" + os.path.basename(victim)[:-len(".tpfs-partial")]
        for bad in (rel, "/" + os.path.basename(victim), "a//b", "./a", "a/.", "a/../b",
                    "a/"):
            with self.subTest(bad):
                with open(journal, "w") as f:
                    f.write(good + "%s tmp 0 %s\n" % (fp, bad))
                r = tool("convert", self.src, out, check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assert_untouched(victim)
                self.assertIn("%s: line %d: not a journal of this tpfs" %
                              (journal, len(good.splitlines()) + 1), r.stderr.decode())
                self.assertIn("empty, absolute, or has an empty, '.' or '..' part",
                              r.stderr.decode())


class ConvertRoom(unittest.TestCase):
    """convert checks that OUT's filesystem has room before it writes."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)  # after the tmpfs are unmounted
        self.src = os.path.join(self.tmp.name, "model")
        # 8 BF16 tensors served as float32: 1 MiB and a header each
        subprocess.run([GEN, self.src, "--quiet", *sum(
            (["--tensor", "t%d=bf16:256x1024" % i] for i in range(8)), [])], check=True)
        self.npy = len(T.npy_bytes(np.zeros((256, 1024), "<f4")))

    def tmpfs(self, size):
        """A tmpfs of that size, unmounted at the end."""
        fs = tempfile.mkdtemp(dir=self.tmp.name)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", fs],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", fs], check=True)
        return fs

    def refused(self, out, files, *args):
        """convert into out is refused in one line with the room files of
        the model's .npy size need and what out's filesystem has free."""
        top = out
        while not os.path.exists(top):
            top = os.path.dirname(top)
        before = sorted(os.listdir(top))
        r = tool("convert", self.src, out, *args, check=False)
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        m = re.fullmatch(r"tpfs convert: (.*): need ([\d.]+) MiB for the files to write, "
                         r"([\d.]+) MiB free on its filesystem; make room or choose another "
                         r"folder", lines[0])
        self.assertTrue(m, lines[0])
        st = os.statvfs(top)
        block = st.f_frsize
        need = files * -(-self.npy // block) * block
        free = st.f_bavail * st.f_frsize
        self.assertGreater(need, free)
        self.assertEqual(m.groups(), (out, "%.1f" % (math.ceil(need / 2**20 * 10) / 10),
                                      "%.1f" % (math.floor(free / 2**20 * 10) / 10)))
        self.assertEqual(sorted(os.listdir(top)), before)  # nothing written

    def test_a_filesystem_too_small_is_refused_before_anything_is_written(self):
        fs = self.tmpfs("4M")
        self.refused(os.path.join(fs, "out", "deeper"), 8)
        os.mkdir(os.path.join(fs, "out"))
        self.refused(os.path.join(fs, "out"), 8)

    def test_files_an_earlier_run_wrote_and_this_one_keeps_need_no_room(self):
        fs = self.tmpfs("12M")
        out = os.path.join(fs, "out")
        tool("convert", self.src, out)
        self.assertLess(os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize, 8 * self.npy)
        r = tool("convert", self.src, out)
        self.assertIn("all 8 files already converted, kept", r.stdout.decode())
        for k in range(3):
            os.unlink(os.path.join(out, "t%d.npy" % k))
        r = tool("convert", self.src, out)
        self.assertIn("3 files written, 5 kept", r.stdout.decode())
        # Other options: every file is written anew (and the old ones stay
        # until the new ones are complete)
        self.refused(out, 8, "-o", "by_file")
        self.assertTrue(os.path.exists(os.path.join(out, "manifest.json")))


def gen(*args, check=True):
    r = subprocess.run([GEN, *args], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError("tpfs-gen %s failed: %s" % (" ".join(args), r.stderr))
    return r


def snapshot(top):
    """Every entry under top: its bytes for a file, its target for a link."""
    out = {}
    for name in os.listdir(top):
        path = os.path.join(top, name)
        if os.path.islink(path):
            out[name] = "-> " + os.readlink(path)
        else:
            with open(path, "rb") as f:
                out[name] = f.read()
    return out


class GeneratorOut(unittest.TestCase):
    """What tpfs-gen does with an OUT that holds files already."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_a_folder_that_is_not_empty_is_refused_without_force(self):
        out = os.path.join(self.tmp.name, "model")
        gen(out, "--quiet", "--preset", "demo", "--layers", "1", "--vocab", "64",
            "--shards", "2")
        before = snapshot(out)
        for args in (["--tensor", "w=f32:3"], ["--layers", "1", "--vocab", "64"]):
            with self.subTest(args):
                r = gen(out, "--quiet", *args, check=False)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr.splitlines(), [
                    "tpfs-gen: %s is not empty (4 entries, such as config.json): choose a "
                    "new or empty folder, or give --force to replace the files tpfs-gen "
                    "writes there" % out])
                self.assertEqual(snapshot(out), before)
        # An empty folder is fine.
        empty = os.path.join(self.tmp.name, "empty")
        os.mkdir(empty)
        gen(empty, "--quiet", "--tensor", "w=f32:3")
        self.assertEqual(sorted(os.listdir(empty)), ["model.safetensors"])

    def test_force_replaces_only_what_it_writes_and_names_the_rest(self):
        out = os.path.join(self.tmp.name, "model")
        gen(out, "--quiet", "--preset", "demo", "--layers", "1", "--vocab", "64",
            "--shards", "2")
        victim = os.path.join(self.tmp.name, "victim")
        with open(victim, "w") as f:
            f.write("precious")
        with open(os.path.join(out, "notes.txt"), "w") as f:
            f.write("mine")
        # A link where tpfs-gen writes is replaced, never written through.
        os.symlink(victim, os.path.join(out, "model.safetensors"))
        before = snapshot(out)
        r = gen(out, "--quiet", "--force", "--tensor", "w=f32:3")
        others = sorted(set(before) - {"model.safetensors"})
        self.assertEqual(r.stderr.splitlines(), [
            "tpfs-gen: warning: %s keeps %d entries tpfs-gen does not write (such as %s), "
            "which a mount of it shows beside the model" % (out, len(others), others[0])])
        after = snapshot(out)
        self.assertEqual({k: after[k] for k in others}, {k: before[k] for k in others})
        self.assertFalse(os.path.islink(os.path.join(out, "model.safetensors")))
        _, infos = T.read_safetensors(os.path.join(out, "model.safetensors"))
        self.assertEqual(list(infos), ["w"])
        with open(victim) as f:
            self.assertEqual(f.read(), "precious")
        # The same files again: replaced, no warning.
        again = os.path.join(self.tmp.name, "again")
        gen(again, "--quiet", "--tensor", "w=f32:300")
        _, first = T.read_safetensors(os.path.join(again, "model.safetensors"))
        r = gen(again, "--quiet", "--force", "--tensor", "w=f32:300", "--seed", "2")
        self.assertEqual(r.stderr, "")
        _, infos = T.read_safetensors(os.path.join(again, "model.safetensors"))
        self.assertEqual(infos["w"]["shape"], (300,))
        self.assertNotEqual(infos["w"]["raw"], first["w"]["raw"])
        r = gen("--help")
        self.assertIn("--force", r.stdout)


class GeneratorTensors(unittest.TestCase):
    """--tensor: what each spec writes, and each mistake's rule."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_each_tensor_mistake_names_the_rule_it_breaks(self):
        cases = {
            "w=f8:3": "the dtype is one of bf16, f16, f32, f8_e4m3, f8_e5m2, or mxfp4 for a "
                      "_blocks/_scales pair, not 'f8'",
            "w=i32:3": "the dtype is one of bf16, f16, f32, f8_e4m3, f8_e5m2, or mxfp4 for a "
                       "_blocks/_scales pair, not 'i32'",
            "w=f32": "expected NAME=DTYPE:SHAPE, such as w=bf16:4096x4096",
            "=f32:3": "the name is empty",
            "n" * 151 + "=f32:3": "the name is longer than 150 bytes",
            "w=f32:3xa": "a dimension is a whole number below 2^64, not 'a'",
            "w=f32:3x": "a dimension is a whole number below 2^64, not ''",
            "w=f32:-3": "a dimension is a whole number below 2^64, not '-3'",
            "w=f32:99999999999999999999":
                "a dimension is a whole number below 2^64, not '99999999999999999999'",
            "w=f32:4294967296x4294967296": "the tensor has more than 2^64 bytes",
            "w=f32:1x2x3x4x5": "tpfs-gen writes at most 4 dimensions",
            "w=mxfp4:1x2x3x32": "an mxfp4 pair takes at most 3 dimensions",
            "w=mxfp4:2x33": "an mxfp4 pair's last dimension is a multiple of 32 (a scale "
                            "for each 32 values), not 33",
            "w=mxfp4:": "an mxfp4 pair has at least one dimension",
        }
        for spec, rule in cases.items():
            with self.subTest(spec):
                out = os.path.join(self.tmp.name, "out")
                r = gen(out, "--quiet", "--tensor", spec, check=False)
                self.assertEqual(r.returncode, 2)
                self.assertEqual(r.stderr, "tpfs-gen: --tensor %s: %s\n" % (spec, rule))
                self.assertFalse(os.path.exists(out))
        for specs, name in ((["w=f32:3", "w=bf16:2"], "w"),
                            (["w_scales=f32:3", "w=mxfp4:32"], "w_scales")):
            r = gen(os.path.join(self.tmp.name, "out"), "--tensor", specs[0], "--tensor",
                    specs[1], check=False)
            self.assertEqual(r.stderr, "tpfs-gen: --tensor %s: each name once: '%s' is given "
                             "twice\n" % (specs[1], name))
        r = gen(os.path.join(self.tmp.name, "out"), "--dtype", "f8", check=False)
        self.assertEqual(r.stderr, "tpfs-gen: --dtype is one of bf16, f16, f32, f8_e4m3, "
                         "f8_e5m2, not 'f8'\n")

    def test_fp8_tensors_are_normal_values_rounded_to_nearest(self):
        """F8_E4M3 and F8_E5M2, decoded here from the OFP8 definition: no
        NaN or infinity, and each value as often as a normal variate of std
        0.02 rounds to it (the chance of the interval between the midpoints
        to its neighbours); the mount's float32 are the same values."""
        n, std = 1000 * 1000, 0.02
        for dtype in ("F8_E4M3", "F8_E5M2"):
            with self.subTest(dtype):
                src = os.path.join(self.tmp.name, dtype)
                spec = "w=%s:1000x1000" % (dtype.lower() if dtype == "F8_E4M3" else dtype)
                gen(src, "--quiet", "--tensor", spec, "--seed", "3")
                _, infos = T.read_safetensors(os.path.join(src, "model.safetensors"))
                self.assertEqual((infos["w"]["dtype"], infos["w"]["shape"]),
                                 (dtype, (1000, 1000)))
                codes = np.frombuffer(infos["w"]["raw"], np.uint8)
                values = T.minifloat_values(codes, *T.MINIFLOATS[dtype])
                self.assertTrue(np.isfinite(values).all())
                self.assertAlmostEqual(float(values.std()), std, delta=std * 0.02)
                grid = T.minifloat_values(np.arange(256), *T.MINIFLOATS[dtype])
                grid = np.unique(grid[np.isfinite(grid)])  # -0 and 0 as one
                mids = (grid[1:] + grid[:-1]) / 2
                edges = np.concatenate([[-np.inf], mids, [np.inf]])
                cdf = np.array([0.5 * (1 + math.erf(e / std / math.sqrt(2))) for e in edges])
                p = np.diff(cdf)
                got = np.array([(values == g).sum() for g in grid])
                # the variates come from a table of 2^16 quantiles
                tol = 5 * np.sqrt(n * p * (1 - p)) + 2 * n / 65536 + 1
                bad = np.abs(got - n * p) > tol
                self.assertFalse(bad.any(), list(zip(grid[bad], got[bad], (n * p)[bad])))
                r = tool("cat", src, "w", "-o", "fp8=f32")
                served = np.load(io.BytesIO(r.stdout))
                self.assertTrue(T.same_values(served, values.astype("<f4").reshape(1000, 1000)))

    def test_dtype_sets_the_preset_s_tensors(self):
        src = os.path.join(self.tmp.name, "m")
        gen(src, "--quiet", "--preset", "demo", "--layers", "1", "--vocab", "64", "--dtype",
            "f8_e5m2")
        dtypes = {d for d, _ in layout_of(src).values()}
        self.assertEqual(dtypes, {"F8_E5M2", "U8"})  # U8: the MXFP4 pairs
        with open(os.path.join(src, "config.json")) as f:
            self.assertEqual(json.load(f)["torch_dtype"], "float8_e5m2")


def gpt_oss_layout(layers, hidden, experts, vocab, heads, kv_heads, head_dim,
                   intermediate, tied):
    """name -> (dtype, shape) of a GPT-OSS checkpoint in the Hugging Face
    layout, from its config: BF16 everywhere but the MXFP4 expert weights,
    stored as _blocks [E, rows, cols / 32, 16] and _scales [E, rows, cols / 32]
    beside a BF16 _bias [E, rows]."""
    q, kv = heads * head_dim, kv_heads * head_dim
    per_layer = {
        "input_layernorm.weight": [hidden], "post_attention_layernorm.weight": [hidden],
        "self_attn.q_proj.weight": [q, hidden], "self_attn.q_proj.bias": [q],
        "self_attn.k_proj.weight": [kv, hidden], "self_attn.k_proj.bias": [kv],
        "self_attn.v_proj.weight": [kv, hidden], "self_attn.v_proj.bias": [kv],
        "self_attn.o_proj.weight": [hidden, q], "self_attn.o_proj.bias": [hidden],
        "self_attn.sinks": [heads],
        "mlp.router.weight": [experts, hidden], "mlp.router.bias": [experts]}
    out = {}
    for l in range(layers):
        p = "model.layers.%d." % l
        out.update({p + k: ("BF16", tuple(v)) for k, v in per_layer.items()})
        for w, rows, cols in (("gate_up_proj", 2 * intermediate, hidden),
                              ("down_proj", hidden, intermediate)):
            e = p + "mlp.experts." + w
            out[e + "_blocks"] = ("U8", (experts, rows, cols // 32, 16))
            out[e + "_scales"] = ("U8", (experts, rows, cols // 32))
            out[e + "_bias"] = ("BF16", (experts, rows))
    out["model.embed_tokens.weight"] = ("BF16", (vocab, hidden))
    out["model.norm.weight"] = ("BF16", (hidden,))
    if not tied:
        out["lm_head.weight"] = ("BF16", (vocab, hidden))
    return out


def layout_of(src):
    got = {}
    for f in sorted(os.listdir(src)):
        if f.endswith(".safetensors"):
            _, infos = T.read_safetensors(os.path.join(src, f), with_data=False)
            got.update({n: (i["dtype"], tuple(i["shape"])) for n, i in infos.items()})
    return got


class Generator(T.FuseCase):
    def test_gpt_oss_20b_structure(self):
        """Every name, dtype and shape of the real checkpoint, from its
        public config; with them, its published figures (459 tensors,
        13,761,264,768 data bytes), the index and the config; mounted,
        the pairs are merged."""
        want = gpt_oss_layout(layers=24, hidden=2880, experts=32, vocab=201088, heads=64,
                              kv_heads=8, head_dim=64, intermediate=2880, tied=False)
        size = {"BF16": 2, "U8": 1}
        self.assertEqual(len(want), 459)
        self.assertEqual(sum(size[d] * int(np.prod(s)) for d, s in want.values()),
                         13761264768)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "gpt-oss-20b")
            subprocess.run([GEN, src, "--preset", "gpt-oss-20b", "--sparse"], check=True,
                           capture_output=True)
            shards = sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))
            self.assertEqual(len(shards), 3)
            self.assertEqual(layout_of(src), want)
            with open(os.path.join(src, "model.safetensors.index.json")) as f:
                self.assertEqual(set(json.load(f)["weight_map"]), set(want))
            with open(os.path.join(src, "config.json")) as f:
                cfg = json.load(f)
            self.assertEqual({k: cfg[k] for k in (
                "num_hidden_layers", "hidden_size", "intermediate_size", "num_local_experts",
                "vocab_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                "tie_word_embeddings")},
                {"num_hidden_layers": 24, "hidden_size": 2880, "intermediate_size": 2880,
                 "num_local_experts": 32, "vocab_size": 201088, "num_attention_heads": 64,
                 "num_key_value_heads": 8, "head_dim": 64, "tie_word_embeddings": False})
            with T.Mount(src) as m:
                r = subprocess.run(["ls", "-lR", m.mnt], capture_output=True, text=True,
                                   check=True)
                listed = [l for l in r.stdout.splitlines() if l.endswith(".npy")]
                # 48 MXFP4 pairs are served as 48 tensors: 459 - 48.
                self.assertEqual(len(listed), 411)
                with open(m.path("manifest.json")) as f:
                    manifest = json.load(f)
                self.assertEqual(len(manifest["tensors"]), 411)
                self.assertEqual(sum(1 for t in manifest["tensors"]
                                     if t["source_dtype"] == "MXFP4"), 48)

    def test_demo_is_the_documented_model(self):
        """The README's demo: vocabulary 32000, hidden 768, 4 layers, 12
        query and 4 key/value heads of 64, 4 experts of 192, tied
        embeddings; its parameters (two FP4 values a block byte, scales
        not counted) are the 37,991,232 the README gives."""
        want = gpt_oss_layout(layers=4, hidden=768, experts=4, vocab=32000, heads=12,
                              kv_heads=4, head_dim=64, intermediate=192, tied=True)
        params = sum(int(np.prod(s)) * (2 if n.endswith("_blocks") else 1)
                     for n, (d, s) in want.items() if not n.endswith("_scales"))
        self.assertEqual(params, 37991232)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "demo")
            subprocess.run([GEN, src, "--preset", "demo", "--quiet"], check=True)
            self.assertEqual(layout_of(src), want)

    def test_seed_reproduces_and_values_look_initialised(self):
        with tempfile.TemporaryDirectory() as tmp:
            for d in ("a", "b", "c"):
                seed = "2" if d == "c" else "1"
                subprocess.run([GEN, os.path.join(tmp, d), "--preset", "demo", "--quiet",
                                "--seed", seed, "--layers", "1", "--vocab", "1000"],
                               check=True)
            def blob(d):
                with open(os.path.join(tmp, d, "model.safetensors"), "rb") as f:
                    return f.read()
            self.assertEqual(blob("a"), blob("b"))
            self.assertNotEqual(blob("a"), blob("c"))
            _, infos = T.read_safetensors(os.path.join(tmp, "a", "model.safetensors"))
            w = T.expected_array("BF16", *(lambda i: (i["shape"], i["raw"]))(
                infos["model.embed_tokens.weight"]))
            self.assertAlmostEqual(float(w.std()), 0.02, delta=0.002)
            self.assertAlmostEqual(float(w.mean()), 0.0, delta=0.002)
            norm = T.expected_array("BF16", *(lambda i: (i["shape"], i["raw"]))(
                infos["model.norm.weight"]))
            self.assertTrue((norm == 1).all())
            scales = np.frombuffer(infos["model.layers.0.mlp.experts.down_proj_scales"]["raw"],
                                   np.uint8)
            self.assertTrue(110 <= scales.min() and scales.max() <= 125)


if __name__ == "__main__":
    T.main()
