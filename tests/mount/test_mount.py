"""Real mounts: every tensor, file and folder a mount serves, checked against
expectations computed here from the source files."""

import concurrent.futures
import errno
import json
import mmap
import os
import random
import shutil
import stat
import subprocess
import tempfile
import threading
import time

import numpy as np

import tpfstest as T

rng = np.random.default_rng(20261126)


def rand_bytes(n):
    return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()


def model_tensors():
    """One tensor of every dtype tpfs serves, plus shapes that test edges."""
    t = []
    for dt, shape in [("F32", (17, 33)), ("F16", (5, 7)), ("F64", ()),
                      ("I8", (11,)), ("U8", (3, 3, 3)), ("I16", (9,)),
                      ("U16", (4, 2)), ("I32", (6,)), ("U32", (6,)),
                      ("I64", (2, 2)), ("U64", (3,)), ("C64", (4,)),
                      ("F32", (0, 4)), ("BF16", (3, 0))]:
        n = int(np.prod(shape)) if shape else 1
        name = "%s_%s" % (dt.lower(), "x".join(map(str, shape)) or "scalar")
        t.append((name, dt, shape, rand_bytes(n * T.BITS[dt] // 8)))
    t.append(("bool", "BOOL", (10,), bytes(rng.integers(0, 2, 10, dtype=np.uint8))))
    # Every BF16 bit pattern: NaN payloads, infinities, zeros, subnormals.
    t.append(("bf16_all", "BF16", (256, 256),
              np.arange(65536, dtype="<u2").tobytes()))
    # Many blocks of converted output (6 MiB with the default 1 MiB blocks).
    t.append(("layers/0/bf16_big", "BF16", (1024, 1536), rand_bytes(1024 * 1536 * 2)))
    t.append(("odd", "U8", (5,), rand_bytes(5)))   # misaligns what follows
    # Every code of each 8-bit format, all 16 FP4 values in both nibbles,
    # and F6 bytes (served raw: the format defines no packing).
    every_byte = bytes(range(256))
    for dt in ("F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"):
        t.append((dt.lower(), dt, (16, 16), every_byte))
    t.append(("f4", "F4", (256, 2), every_byte))
    t.append(("f6", "F6_E2M3", (4, 8), rand_bytes(24)))
    return t


def build_source(root):
    src = os.path.join(root, "src")
    tensors = model_tensors()
    # Data laid out in reverse name order, header not padded.
    order = [x[0] for x in sorted(tensors, key=lambda x: x[0], reverse=True)]
    T.write_safetensors(os.path.join(src, "model.safetensors"), tensors,
                        data_order=order, pad=False)
    with open(os.path.join(src, "config.json"), "w") as f:
        json.dump({"hidden_size": 8, "name": "t\u00e9st"}, f)
    with open(os.path.join(src, "tokenizer.json"), "wb") as f:
        f.write(rand_bytes(300000))
    with open(os.path.join(src, "README.md"), "w") as f:
        f.write("# test model\n")
    T.write_safetensors(os.path.join(src, "unet", "diffusion_pytorch_model.safetensors"),
                        [("conv_in.weight", "F16", (2, 3), rand_bytes(12))],
                        metadata={"format": "pt"})
    with open(os.path.join(src, "unet", "config.json"), "w") as f:
        f.write("{}")
    # A Hugging Face cache snapshot links into a blob store.
    blobs = os.path.join(root, "blobs")
    T.write_safetensors(os.path.join(blobs, "0a1b2c"),
                        [("decoder.weight", "BF16", (8, 8), rand_bytes(128))],
                        metadata_null=True)
    os.makedirs(os.path.join(src, "vae"))
    os.symlink(os.path.join(blobs, "0a1b2c"),
               os.path.join(src, "vae", "model.safetensors"))
    return src


def check_paths_are_safe(test, manifest):
    """Every path stays inside the mount: relative, no empty, '.' or '..'
    component, none over 255 bytes."""
    for t in manifest["tensors"]:
        parts = t["path"].split("/")
        test.assertFalse(t["path"].startswith("/"), t["path"])
        for part in parts:
            test.assertNotIn(part, ("", ".", ".."), repr(t["path"]))
            test.assertLessEqual(len(part.encode()), 255, repr(t["path"]))


def all_files(top):
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, top)] = p
    return out


class MountedModel(T.FuseCase):
    @classmethod
    def prepare(cls, tmp):
        cls.mount = None
        if not T.fuse_available():
            return
        cls.src = build_source(tmp)
        cls.mount = T.Mount(cls.src).__enter__()
        with open(cls.mount.path("manifest.json")) as f:
            cls.manifest = json.load(f)

    @classmethod
    def tearDownClass(cls):
        if cls.mount is not None:
            cls.mount.__exit__(None, None, None)
        super().tearDownClass()

    def test_every_tensor_equals_its_source(self):
        n = T.check_source_tree(self, self.src, self.mount, self.manifest)
        self.assertEqual(n, len(model_tensors()) + 2)  # + unet, vae

    def test_sizes_equal_the_bytes_read(self):
        files = all_files(self.mount.mnt)
        self.assertIn("manifest.json", files)
        self.assertIn(os.path.join(".tpfs", "stats"), files)
        # .tpfs/stats changes between a stat and a read: it is direct_io.
        del files[os.path.join(".tpfs", "stats")]
        for rel, p in files.items():
            with open(p, "rb") as f:
                data = f.read()
            self.assertEqual(os.stat(p).st_size, len(data), rel)

    def test_tree_mirrors_the_source(self):
        files = set(all_files(self.mount.mnt))
        want = {"config.json", "tokenizer.json", "README.md", "manifest.json",
                ".tpfs/stats", "unet/config.json", "unet/conv_in.weight.npy",
                "vae/decoder.weight.npy", "layers/0/bf16_big.npy", "bool.npy",
                "bf16_all.npy", "odd.npy"}
        self.assertTrue(want <= files, want - files)
        self.assertFalse(any(f.endswith(".safetensors") for f in files))
        self.assertIn("f8_e4m3.npy", files)
        self.assertEqual(sorted(os.listdir(self.mount.path("unet"))),
                         ["config.json", "conv_in.weight.npy"])

    def test_passed_through_files_are_identical(self):
        for rel in ("config.json", "tokenizer.json", "README.md", "unet/config.json"):
            with open(os.path.join(self.src, rel), "rb") as a, \
                    open(self.mount.path(rel), "rb") as b:
                self.assertEqual(a.read(), b.read(), rel)

    def expected_bytes(self, rel):
        """The whole file, from the source: np.save of the tensor decoded
        independently, or the passed-through file's own bytes."""
        if not rel.endswith(".npy"):
            with open(os.path.join(self.src, rel), "rb") as f:
                return f.read()
        _, infos = T.read_safetensors(os.path.join(self.src, "model.safetensors"))
        i = infos[rel[:-len(".npy")]]
        return T.npy_bytes(T.expected_array(i["dtype"], i["shape"], i["raw"]))

    def test_random_preads_agree_with_the_source(self):
        r = random.Random(7)
        for rel in ("layers/0/bf16_big.npy", "f32_17x33.npy", "tokenizer.json",
                    "bf16_all.npy"):
            p = self.mount.path(rel)
            whole = self.expected_bytes(rel)
            fd = os.open(p, os.O_RDONLY)
            try:
                for _ in range(200):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    off = r.randrange(0, len(whole) + 10)
                    n = r.choice([1, 3, 63, 64, 65, 4096, 65537, 1 << 20, 3 << 20])
                    self.assertEqual(os.pread(fd, n, off), whole[off:off + n],
                                     (rel, off, n))
            finally:
                os.close(fd)

    def test_sixteen_threads_reading_at_once_agree(self):
        rels = ["layers/0/bf16_big.npy", "bf16_all.npy", "f32_17x33.npy",
                "tokenizer.json"]
        whole = {rel: self.expected_bytes(rel) for rel in rels}

        def worker(seed):
            r = random.Random(seed)
            fds = {rel: os.open(self.mount.path(rel), os.O_RDONLY) for rel in rels}
            bad = 0
            try:
                for _ in range(60):
                    rel = r.choice(rels)
                    fd = fds[rel]
                    # Drop the kernel's copy so the reads reach the daemon.
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    off = r.randrange(0, len(whole[rel]))
                    n = r.choice([4096, 1 << 20, 1 << 19, 12345])
                    bad += os.pread(fd, n, off) != whole[rel][off:off + n]
            finally:
                for fd in fds.values():
                    os.close(fd)
            return bad

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            self.assertEqual(sum(pool.map(worker, range(16))), 0)

    def test_writes_fail_with_erofs(self):
        p = self.mount.path("bool.npy")
        attempts = [
            lambda: open(p, "r+b"),
            lambda: open(p, "wb"),
            lambda: open(p, "ab"),
            lambda: open(self.mount.path("new.npy"), "wb"),
            lambda: os.mkdir(self.mount.path("newdir")),
            lambda: os.rename(p, self.mount.path("moved.npy")),
            lambda: os.unlink(p),
            lambda: os.rmdir(self.mount.path("unet")),
            lambda: os.chmod(p, 0o644),
            lambda: os.truncate(p, 0),
            lambda: os.utime(p, (0, 0)),
            lambda: os.symlink("x", self.mount.path("link")),
            lambda: os.link(p, self.mount.path("hard")),
            lambda: os.setxattr(p, "user.k", b"v"),
        ]
        for i, attempt in enumerate(attempts):
            with self.assertRaises(OSError, msg=str(i)) as cm:
                attempt()
            self.assertEqual(cm.exception.errno, errno.EROFS, str(i))

    def test_modes_owner_and_times(self):
        st_src = os.stat(os.path.join(self.src, "model.safetensors"))
        st = os.stat(self.mount.path("bool.npy"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o444)
        self.assertEqual(st.st_uid, os.getuid())
        self.assertEqual(st.st_gid, os.getgid())
        self.assertEqual(st.st_mtime_ns, st_src.st_mtime_ns)
        d = os.stat(self.mount.path("unet"))
        self.assertTrue(stat.S_ISDIR(d.st_mode))
        self.assertEqual(stat.S_IMODE(d.st_mode), 0o555)
        cfg = os.stat(self.mount.path("config.json"))
        self.assertEqual(cfg.st_mtime_ns,
                         os.stat(os.path.join(self.src, "config.json")).st_mtime_ns)

    def test_manifest_describes_every_tensor(self):
        m = self.manifest
        self.assertEqual(m["source"], os.path.realpath(self.src))
        self.assertEqual(m["options"]["cache_size"], 256 << 20)
        names = {(t["source_file"], t["name"]) for t in m["tensors"]}
        want = {("model.safetensors", t[0]) for t in model_tensors()}
        want |= {("unet/diffusion_pytorch_model.safetensors", "conv_in.weight"),
                 ("vae/model.safetensors", "decoder.weight")}
        self.assertEqual(names, want)
        served = {t["path"] for t in m["tensors"] if t["path"]}
        on_disk = {p for p in all_files(self.mount.mnt) if p.endswith(".npy")}
        self.assertEqual(served, on_disk)
        f8 = [t for t in m["tensors"] if t["name"] == "f8_e4m3"][0]
        self.assertEqual((f8["dtype"], f8["conversion"], f8["exact"]),
                         ("<f2", "f8_e4m3->f16", True))
        f6 = [t for t in m["tensors"] if t["name"] == "f6"][0]
        self.assertEqual((f6["dtype"], f6["shape"], f6["conversion"]),
                         ("|u1", [24], "f6 bytes (raw; packing undefined)"))
        big = [t for t in m["tensors"] if t["name"] == "layers/0/bf16_big"][0]
        self.assertEqual(big["conversion"], "bf16->f32")
        self.assertIs(big["exact"], True)
        self.assertEqual(big["dtype"], "<f4")
        self.assertEqual(big["npy_bytes"], 128 + 1024 * 1536 * 4)
        files = {f["path"]: f for f in m["files"]}
        self.assertNotIn("metadata", files["model.safetensors"])
        self.assertEqual(files["unet/diffusion_pytorch_model.safetensors"]["metadata"],
                         {"format": "pt"})
        self.assertIsNone(files["vae/model.safetensors"]["metadata"])

    def test_stats_count_reads_and_conversions(self):
        """A fresh mount: each counter moves by what one read did."""
        with T.Mount(self.src) as m:
            def stats():
                with open(m.path(".tpfs/stats")) as f:
                    return json.load(f)
            before = stats()
            for key in ("reads", "bytes_served", "cache_hits", "cache_misses",
                        "cache_evictions", "bytes_converted", "overflows", "errors"):
                self.assertEqual(before[key], 0, key)
            with open(m.path("bf16_all.npy"), "rb") as f:
                n = len(f.read())
            after = stats()
            self.assertGreater(after["reads"], 0)
            self.assertEqual(after["bytes_served"], n)
            # 65536 values of float32 in one block of 1 MiB, converted once.
            self.assertEqual(after["bytes_converted"], 65536 * 4)
            self.assertEqual(after["cache_misses"], 1)
            self.assertEqual(after["cache_blocks"], 1)
            with open(m.path("bf16_all.npy"), "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                f.read()
            again = stats()
            self.assertEqual(again["bytes_converted"], 65536 * 4)  # from the cache
            self.assertGreater(again["cache_hits"], after["cache_hits"])
            self.assertLessEqual(again["cache_bytes"], again["cache_capacity"])
            self.assertEqual(again["errors"], 0)

    def test_df_shows_a_read_only_filesystem_that_is_not_full(self):
        """statfs: the size is what the mount serves (its .npy and
        passed-through files), none of it used and none free to write, so
        df prints Use% '-' (not 100%)."""
        with T.Mount(self.src) as m:
            files, entries = 0, 1  # the root
            for root, dirs, names in os.walk(m.mnt):
                entries += len(dirs) + len(names)
                if root.startswith(m.path(".tpfs")):
                    continue
                files += sum(os.stat(os.path.join(root, n)).st_size for n in names
                             if root != m.mnt or n != "manifest.json")
            s = os.statvfs(m.mnt)
            df = subprocess.run(["df", "-P", m.mnt], capture_output=True, text=True,
                                check=True).stdout.splitlines()[1].split()
        self.assertTrue(s.f_flag & os.ST_RDONLY)
        self.assertGreaterEqual(s.f_blocks * s.f_frsize, files)
        self.assertLess(s.f_blocks * s.f_frsize, files + entries * s.f_frsize)
        self.assertEqual((s.f_bfree, s.f_bavail), (s.f_blocks, 0))
        self.assertEqual((s.f_files, s.f_ffree), (entries, entries))
        self.assertEqual(df[2:5], ["0", "0", "-"])  # Used, Available, Capacity

    def test_overflows_count_each_value_read_once(self):
        """dtype=f16: the overflows counter is the number of finite values
        read that became infinite, each counted once however often its
        block is converted again (no cache, a second read, the card)."""
        src = tempfile.mkdtemp(prefix="tpfs-ovf-")
        self.addCleanup(shutil.rmtree, src)
        rng = np.random.default_rng(7)
        vals = rng.uniform(-60000, 60000, 3 * 32768).astype("<f4")
        # in three of the six 64 KiB float16 blocks: values too large for
        # float16, 65520 (rounds up to infinity), float16's largest, and
        # infinities and NaN, which were not finite to begin with
        vals[5] = 1e6
        vals[40000:40004] = [65520.0, -7e4, 65504.0, np.inf]
        vals[98000:98003] = [-np.inf, np.nan, 3e38]
        want = int(np.count_nonzero(np.isfinite(vals) &
                                    (np.abs(vals.astype(np.float64)) >= 65520.0)))
        self.assertEqual(want, 4)  # 1e6, 65520, -7e4, 3e38
        T.write_safetensors(os.path.join(src, "model.safetensors"),
                            [("w", "F32", vals.shape, vals.tobytes())])
        with T.Mount(src, opts="dtype=f16,cache_size=0,block_size=64K") as m:
            def overflows():
                with open(m.path(".tpfs/stats")) as f:
                    return json.load(f)["overflows"]
            self.assertEqual(overflows(), 0)
            got = np.load(m.path("w.npy"))
            self.assertEqual(int(np.count_nonzero(np.isinf(got) & np.isfinite(vals))), want)
            self.assertEqual(overflows(), want)
            for _ in range(2):
                with open(m.path("w.npy"), "rb") as f:
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                    f.read()
            with open(m.path(".tpfs/info/w.txt")) as f:
                f.read()
            self.assertEqual(overflows(), want)

    def test_an_info_card_counts_as_its_own_bytes(self):
        """Computing a card streams its tensor, but only the card was read,
        and the block cache readers use is left alone."""
        with T.Mount(self.src) as m:
            with open(m.path(".tpfs/info/layers/0/bf16_big.txt"), "rb") as f:
                n = len(f.read())
            with open(m.path(".tpfs/stats")) as f:
                stats = json.load(f)
            self.assertEqual(stats["bytes_served"], n)
            self.assertEqual((stats["cache_misses"], stats["cache_blocks"]), (0, 0))
            self.assertEqual(stats["bytes_converted"], 1024 * 1536 * 4)  # converted once
            self.assertGreater(os.path.getsize(m.path("layers/0/bf16_big.npy")), 1 << 20)


class ReadAhead(T.FuseCase):
    """A reader reading a converted tensor in order gets its next blocks
    made ahead (2 MiB read in order, then 8 MiB ahead, in blocks of 1 MiB):
    the bytes stay those of the source, and .tpfs/stats counts the blocks
    made. Data served as stored is read into each request and never enters
    the block cache. Reads far apart make nothing ahead. A single-threaded
    daemon (-s) has no read-ahead threads."""

    @classmethod
    def prepare(cls, tmp):
        cls.src = os.path.join(tmp, "src")
        cls.raw = {"conv": rand_bytes(2048 * 4096 * 2), "stored": rand_bytes(2048 * 4096 * 4),
                   "far": rand_bytes(8192 * 4096 * 2)}
        cls.shape = {"conv": (2048, 4096), "stored": (2048, 4096), "far": (8192, 4096)}
        cls.dtype = {"conv": "BF16", "stored": "F32", "far": "BF16"}
        T.write_safetensors(os.path.join(cls.src, "m.safetensors"),
                            [(n, cls.dtype[n], cls.shape[n], cls.raw[n]) for n in cls.raw])

    def want(self, name):
        return T.npy_bytes(T.expected_array(self.dtype[name], self.shape[name], self.raw[name]))

    def ahead(self, m, key="blocks_read_ahead"):
        with open(m.path(".tpfs/stats")) as f:
            return json.load(f)[key]

    def cache_use(self, m):
        with open(m.path(".tpfs/stats")) as f:
            st = json.load(f)
        return (st["blocks_read_ahead"], st["cache_hits"], st["cache_misses"],
                st["cache_blocks"])

    def test_reading_in_order_reads_ahead_and_serves_the_source(self):
        with T.Mount(self.src) as m:
            for name in ("stored", "conv"):
                before = self.ahead(m)
                use = self.cache_use(m)
                # two readers of the same file at once, and one after them
                def read(_):
                    with open(m.path(name + ".npy"), "rb", buffering=0) as f:
                        return b"".join(iter(lambda: f.read(1 << 20), b""))
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    got = list(pool.map(read, range(2)))
                got.append(read(0))
                want = self.want(name)
                for g in got:
                    self.assertEqual(g, want, name)
                if name == "stored":
                    # nothing made ahead, nothing looked up, nothing held
                    self.assertEqual(self.cache_use(m), use)
                elif T.MODE == "single":
                    self.assertEqual(self.ahead(m), 0)
                else:
                    self.assertGreater(self.ahead(m), before, name)

    def test_reads_far_apart_read_nothing_ahead(self):
        want = self.want("far")
        size = len(want)
        with T.Mount(self.src) as m:
            fd = os.open(m.path("far.npy"), os.O_RDONLY)
            try:
                # no readahead by the kernel: each pread asks for its page only
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                mib = size >> 20
                for i in range(32):  # blocks 0, 32, 2, 34, ...: always 30 apart
                    off = (((i % 2) * (mib // 2) + i) << 20) + 4096 * i
                    self.assertEqual(os.pread(fd, 4096, off), want[off:off + 4096], off)
            finally:
                os.close(fd)
            self.assertEqual(self.ahead(m), 0)
            # rows of a mapped .npy 20 MiB apart, in order: each fault
            # reads 1 MiB around it, and the next is further than that
            a = np.load(m.path("far.npy"), mmap_mode="r")
            rows = a.shape[0]
            step = (20 << 20) // a[0].nbytes
            exp = T.expected_array("BF16", self.shape["far"], self.raw["far"])
            for r in range(0, rows, step):
                self.assertEqual(a[r].tobytes(), exp[r].tobytes(), r)
            del a
            self.assertEqual(self.ahead(m), 0)


class DirectIO(T.FuseCase):
    """-o direct_io: tensor files bypass the kernel's page cache. np.load
    gets the bytes of the source; every read reaches the daemon (nothing is
    kept); a shared mapping is refused with ENODEV and a private one works;
    a source whose mode changes fails the very next read; files that are
    not tensors keep the page cache (and shared mappings)."""

    @classmethod
    def prepare(cls, tmp):
        cls.src = os.path.join(tmp, "src")
        e, r, g = 2, 256, 32  # an MXFP4 pair: 1 MiB of float32
        cls.blocks = rand_bytes(e * r * g * 16)
        cls.scales = bytes(rng.integers(100, 140, e * r * g, dtype=np.uint8))
        cls.pair = ((e, r, g, 16), (e, r, g))
        cls.raw = {"conv": rand_bytes(1024 * 3000 * 2), "stored": rand_bytes(1024 * 3000 * 4)}
        cls.shape = (1024, 3000)
        cls.dtype = {"conv": "BF16", "stored": "F32"}
        T.write_safetensors(os.path.join(cls.src, "m.safetensors"),
                            [(n, cls.dtype[n], cls.shape, cls.raw[n]) for n in cls.raw] +
                            [("w_blocks", "U8", cls.pair[0], cls.blocks),
                             ("w_scales", "U8", cls.pair[1], cls.scales)])

    def want(self, name):
        if name == "w":
            return T.expected_mxfp4(self.blocks, self.pair[0], self.scales, self.pair[1])
        return T.expected_array(self.dtype[name], self.shape, self.raw[name])

    def stats(self, m):
        with open(m.path(".tpfs/stats")) as f:
            return json.load(f)

    def test_np_load_reads_the_source_and_nothing_is_cached(self):
        with T.Mount(self.src, opts="direct_io") as m:
            for name in ("stored", "conv", "w"):
                want = self.want(name)
                served = []
                for _ in range(2):
                    before = self.stats(m)["bytes_served"]
                    got = np.load(m.path(name + ".npy"))
                    self.assertTrue(T.same_bits(got, want), name)
                    served.append(self.stats(m)["bytes_served"] - before)
                # the second load reads every byte from the daemon again
                # (np.load reads the first bytes more than once)
                self.assertGreaterEqual(served[0], os.path.getsize(m.path(name + ".npy")))
                self.assertEqual(served[1], served[0], name)

    def test_shared_mappings_fail_and_private_ones_work(self):
        with T.Mount(self.src, opts="direct_io") as m:
            with self.assertRaises(OSError) as cm:
                np.load(m.path("conv.npy"), mmap_mode="r")
            self.assertEqual(cm.exception.errno, errno.ENODEV)
            a = np.load(m.path("conv.npy"), mmap_mode="c")
            want = self.want("conv")
            for r in (0, 517, 1023):
                self.assertTrue(T.same_bits(np.array(a[r]), want[r]), r)
            del a
            # not a tensor: cached, and mapped shared as ever
            with open(m.path("manifest.json"), "rb") as f:
                with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                    self.assertEqual(json.loads(mm[:])["tensors"][0]["path"], "conv.npy")

    def test_a_mode_change_fails_the_next_read(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            shutil.copytree(self.src, src)
            with T.Mount(src, opts="direct_io") as m:
                with open(m.path("stored.npy"), "rb", buffering=0) as f:
                    first = f.read(1 << 20)
                    self.assertEqual(first, T.npy_bytes(self.want("stored"))[:1 << 20])
                    os.chmod(os.path.join(src, "m.safetensors"), 0o600)
                    # the page cache would have served the kernel's readahead
                    with self.assertRaises(OSError) as cm:
                        f.read(4096)
                    self.assertEqual(cm.exception.errno, errno.EIO)


class SmallCacheMount(T.FuseCase):
    """A cache far smaller than the tensor and small blocks: every read
    converts, evicts and still returns the right bytes."""

    def test_tiny_cache_serves_large_tensor(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            raw = rand_bytes(600000 * 2)
            T.write_safetensors(os.path.join(src, "m.safetensors"),
                                [("w", "BF16", (600000,), raw)])
            want = T.npy_bytes(T.expected_array("BF16", (600000,), raw))
            with T.Mount(src, opts="cache_size=200K,block_size=64K") as m:
                p = m.path("w.npy")
                with open(p, "rb") as f:
                    self.assertEqual(f.read(), want)
                got = np.load(p, mmap_mode="r")
                self.assertTrue(T.same_bits(np.asarray(got),
                                            T.expected_array("BF16", (600000,), raw)))
                del got
                with open(m.path(".tpfs/stats")) as f:
                    s = json.load(f)
                self.assertGreater(s["cache_evictions"], 0)
                self.assertLessEqual(s["cache_bytes"], s["cache_capacity"])


# Tensor name -> path, as the README's naming rules say.
NAMES = {
    "model.embed_tokens.weight": "model.embed_tokens.weight.npy",
    "encoder/layer_0/kernel": "encoder/layer_0/kernel.npy",
    "encoder/layer_0/bias": "encoder/layer_0/bias.npy",
    "\u00e9mbed/\u6743\u91cd weight": "\u00e9mbed/\u6743\u91cd weight.npy",
    "with space": "with space.npy",
    "../etc/passwd": "..%2Fetc%2Fpasswd.npy",
    "a//b": "a%2F%2Fb.npy",
    "..": "...npy",
    ".": "..npy",
    "": ".npy",
    "tab\there": "tab%09here.npy",
    "x/../y": "x%2F..%2Fy.npy",
    "config": "config.npy",
    "config.json": "config.json.npy",
    "w": "w~1.npy",                 # w.npy is a real file of the folder
    "q": "q.npy",                   # names are placed in sorted order...
    "q.npy/a": "q.npy%2Fa.npy",     # ...so this folder would clash with it
}
LONG = "x" * 300  # over 255 bytes: cut to 234, then ~ and its XXH3-64 in hex


class Names(T.FuseCase):
    def test_names_map_to_the_documented_paths(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            names = sorted(list(NAMES) + [LONG])
            tensors = [(n, "U8", (2,), bytes([i % 256, 7])) for i, n in enumerate(names)]
            T.write_safetensors(os.path.join(src, "model.safetensors"), tensors)
            with open(os.path.join(src, "w.npy"), "wb") as f:
                f.write(b"not a tensor")
            with T.Mount(src) as m:
                with open(m.path("manifest.json")) as f:
                    manifest = json.load(f)
                paths = {t["name"]: t["path"] for t in manifest["tensors"]}
                for name in names:
                    got = paths[name]
                    if name == LONG:
                        self.assertEqual(len(got), 255)
                        self.assertTrue(got.startswith("x" * 234 + "~"), got)
                        self.assertRegex(got[235:], r"^[0-9a-f]{16}\.npy$")
                    else:
                        self.assertEqual(got, NAMES[name], repr(name))
                    i = names.index(name)
                    arr = np.load(m.path(got))
                    self.assertEqual(arr.tolist(), [i % 256, 7], repr(name))
                with open(m.path("w.npy"), "rb") as f:
                    self.assertEqual(f.read(), b"not a tensor")
                check_paths_are_safe(self, manifest)


class Permissions(T.FuseCase):
    def test_narrowed_modes_reach_the_mount(self):
        """A source others may not read stays so through the mount: a
        0640 file's tensors are 0440, an MXFP4 pair whose scales are in a
        0600 file is 0400, and cards follow their tensors."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            T.write_safetensors(os.path.join(src, "a.safetensors"),
                                [("pub", "U8", (4,), b"abcd"), ("x_blocks", "U8", (1, 16), bytes(16))])
            T.write_safetensors(os.path.join(src, "b.safetensors"), [("x_scales", "U8", (1,), b"\x7f")])
            T.write_safetensors(os.path.join(src, "c.safetensors"), [("secret", "U8", (4,), b"wxyz")])
            os.chmod(os.path.join(src, "b.safetensors"), 0o600)
            os.chmod(os.path.join(src, "c.safetensors"), 0o640)
            with T.Mount(src) as m:
                def mode(rel):
                    return stat.S_IMODE(os.stat(m.path(rel)).st_mode)
                self.assertEqual(mode("pub.npy"), 0o444)
                self.assertEqual(mode("secret.npy"), 0o440)
                self.assertEqual(mode("x.npy"), 0o400)
                self.assertEqual(mode(".tpfs/info/secret.txt"), 0o440)
                self.assertEqual(mode(".tpfs/info/x.txt"), 0o400)


class DaemonMemory(T.FuseCase):
    def test_reading_the_source_leaves_no_pages_mapped_in_the_daemon(self):
        """Tensor data is read from the source with pread, never mapped
        into the daemon (the pages stay in the page cache): its file-backed
        resident memory does not grow with what was read (here 2.6 GB, from
        a sparse model that costs no disk)."""
        def rss_file_kib(pid):
            with open("/proc/%d/status" % pid) as f:
                return int(next(l for l in f if l.startswith("RssFile:")).split()[1])
        gen = os.path.join(os.path.dirname(os.path.abspath(T.TPFS)), "tpfs-gen")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            subprocess.run([gen, src, "--sparse", "--quiet",
                            "--tensor", "stored=f32:8192x4096",
                            "--tensor", "conv=bf16:8192x4096",
                            "--tensor", "w=mxfp4:32x5760x2880"], check=True)
            with T.Mount(src) as m:
                before = rss_file_kib(m.proc.pid)
                for name in ("stored.npy", "conv.npy", "w.npy"):
                    with open(m.path(name), "rb") as f:
                        while f.read(1 << 20):
                            pass
                grown = rss_file_kib(m.proc.pid) - before
                self.assertLess(grown, 4 << 10, "RssFile grew by %d KiB" % grown)

    def test_many_readers_are_served_by_a_bounded_number_of_threads(self):
        """Each worker thread in a read holds up to two converted blocks or
        a buffer of the read's size, so their number bounds the daemon's memory:
        twice the CPUs it may run on, from 4 to 10, plus the read-ahead
        threads (the CPUs less one, from 1 to 4), however many readers come
        at once; and every reader gets its data."""
        cpus = len(os.sched_getaffinity(0))
        workers = 0 if T.MODE == "single" else (min(10, max(4, 2 * cpus)) +
                                                 min(4, max(1, cpus - 1)))
        readers = 32
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            want = {}
            tensors = []
            for i in range(readers):
                raw = rand_bytes(1 << 20)  # BF16: 2 MiB served as f32
                tensors.append(("w%02d" % i, "BF16", (512, 1024), raw))
                want["w%02d.npy" % i] = T.npy_bytes(
                    T.expected_array("BF16", (512, 1024), raw))
            T.write_safetensors(os.path.join(src, "m.safetensors"), tensors)
            with T.Mount(src, opts="cache_size=4M") as m:
                def read(name):
                    fd = os.open(m.path(name), os.O_RDONLY)
                    try:
                        return name, b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
                    finally:
                        os.close(fd)
                with concurrent.futures.ThreadPoolExecutor(readers) as pool:
                    got = dict(pool.map(read, sorted(want)))
                for name in want:
                    self.assertEqual(got[name], want[name], name)
                # libfuse starts a worker when none is idle and never stops
                # one: what is there now is the most there ever were.
                with open("/proc/%d/status" % m.proc.pid) as f:
                    threads = int(next(l for l in f if l.startswith("Threads:")).split()[1])
                self.assertLessEqual(threads, 1 + workers)

    def test_concurrent_readers_map_no_source_pages(self):
        """While many readers read tensors served as stored, the daemon maps
        none of their source pages (each worker reads into a buffer of its
        own), however many reads are in flight. Here 32 readers of the
        largest F32 tensors of a sparse gpt-oss-20b (2 GiB in all)."""
        gen = os.path.join(os.path.dirname(os.path.abspath(T.TPFS)), "tpfs-gen")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            subprocess.run([gen, src, "--preset", "gpt-oss-20b", "--dtype", "f32",
                            "--sparse", "--quiet"], check=True)
            with T.Mount(src) as m:
                with open(m.path("manifest.json")) as f:
                    stored = sorted((t for t in json.load(f)["tensors"]
                                     if t["conversion"] == "none"),
                                    key=lambda t: -t["npy_bytes"])[:32]
                def rss_file_kib():
                    with open("/proc/%d/status" % m.proc.pid) as f:
                        return int(next(l for l in f if l.startswith("RssFile:")).split()[1])
                before = rss_file_kib()
                peak = [before]
                done = threading.Event()
                def sample():
                    while not done.is_set():
                        peak[0] = max(peak[0], rss_file_kib())
                        time.sleep(0.002)
                def read(t):
                    fd = os.open(m.path(t["path"]), os.O_RDONLY)
                    try:
                        for k in range(min(64, t["npy_bytes"] >> 20)):
                            os.pread(fd, 1 << 20, k << 20)
                    finally:
                        os.close(fd)
                sampler = threading.Thread(target=sample)
                sampler.start()
                with concurrent.futures.ThreadPoolExecutor(len(stored)) as pool:
                    list(pool.map(read, stored))
                done.set()
                sampler.join()
                grown = peak[0] - before
                self.assertLess(grown, 4 << 10, "RssFile grew by %d KiB at most" % grown)


class SourceChanges(T.FuseCase):
    def test_truncated_source_fails_with_eio_and_the_mount_survives(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            a = rand_bytes(4 << 20)
            b = rand_bytes(1 << 20)
            T.write_safetensors(os.path.join(src, "a.safetensors"),
                                [("native", "F32", (1 << 20,), a),
                                 ("conv", "BF16", (1 << 19,), b[: 1 << 20])])
            T.write_safetensors(os.path.join(src, "b.safetensors"),
                                [("other", "U8", (1 << 20,), b)])
            with T.Mount(src) as m:
                with open(m.path("native.npy"), "rb") as f:
                    f.read(4096)
                # The open fails (the kernel would serve pages it cached
                # otherwise); a file open before still fails to read.
                fd = os.open(m.path("conv.npy"), os.O_RDONLY)
                os.truncate(os.path.join(src, "a.safetensors"), 1000)
                with self.assertRaises(OSError) as cm:
                    os.pread(fd, 1 << 20, 1 << 20)
                self.assertEqual(cm.exception.errno, errno.EIO)
                os.close(fd)
                for rel in ("native.npy", "conv.npy"):
                    with self.assertRaises(OSError) as cm:
                        os.open(m.path(rel), os.O_RDONLY)
                    self.assertEqual(cm.exception.errno, errno.EIO, rel)
                # Everything else still works.
                with open(m.path("other.npy"), "rb") as f:
                    self.assertEqual(f.read()[128:], b)
                self.assertIn("native.npy", os.listdir(m.mnt))
                with open(m.path(".tpfs/stats")) as f:
                    self.assertGreater(json.load(f)["errors"], 0)
                # Found by the size check before a read, or by the fault
                # during one, whichever came first.
                self.assertRegex(m.stderr(), "a.safetensors (changed while mounted|"
                                             "could not be read)")

    def test_a_fault_past_the_freshness_check_is_eio_and_the_daemon_lives(self):
        """With fstat made to miss the truncation (an LD_PRELOAD library),
        reading the lost pages faults inside the daemon: the SIGBUS guard
        must turn that into EIO for the reader, and the mount stays up."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            path = os.path.join(src, "a.safetensors")
            T.write_safetensors(path, [("conv", "BF16", (1 << 20,), rand_bytes(2 << 20)),
                                       ("other", "U8", (4096,), rand_bytes(4096))])
            env = {"LD_PRELOAD": os.environ["TPFS_FROZEN_FSTAT"],
                   "TPFS_FROZEN_PATH": os.path.realpath(path),
                   "ASAN_OPTIONS": "verify_asan_link_order=0"}
            with T.Mount(src, env=env) as m:
                os.truncate(path, 4096)
                fd = os.open(m.path("conv.npy"), os.O_RDONLY)
                try:
                    with self.assertRaises(OSError) as cm:
                        os.pread(fd, 1 << 20, 1 << 20)
                finally:
                    os.close(fd)
                self.assertEqual(cm.exception.errno, errno.EIO)
                self.assertIsNone(m.proc.poll(), "the daemon died")
                self.assertIn("manifest.json", os.listdir(m.mnt))
                self.assertIn("a.safetensors could not be read", m.stderr())

    def test_replaced_source_fails_with_eio(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            raw = rand_bytes(1 << 16)
            T.write_safetensors(os.path.join(src, "a.safetensors"),
                                [("w", "U8", (1 << 16,), raw)])
            with T.Mount(src) as m:
                T.write_safetensors(os.path.join(tmp, "new.safetensors"),
                                    [("w", "U8", (1 << 16,), raw)])
                os.rename(os.path.join(tmp, "new.safetensors"),
                          os.path.join(src, "a.safetensors"))
                with self.assertRaises(OSError) as cm:
                    with open(m.path("w.npy"), "rb") as f:
                        f.read()
                self.assertEqual(cm.exception.errno, errno.EIO)
                self.assertIn("deleted or replaced while mounted", m.stderr())


class HeadersOnly(T.FuseCase):
    def test_mounting_reads_no_tensor_data(self):
        """After dropping the source's pages from memory, mounting and
        listing bring back only the header's pages (mincore says which)."""
        import ctypes
        import mmap
        libc = ctypes.CDLL(None, use_errno=True)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src")
            size = 64 << 20
            path = os.path.join(src, "m.safetensors")
            T.write_safetensors(path, [("w", "F32", (size // 4,), rand_bytes(size)),
                                       ("v", "BF16", (1024,), rand_bytes(2048))])
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int, ctypes.c_long]
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
            length = os.fstat(fd).st_size

            def resident_pages():
                addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
                pages = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE
                vec = (ctypes.c_ubyte * pages)()
                rc = libc.mincore(addr, length, vec)
                libc.munmap(addr, length)
                self.assertEqual(rc, 0)
                return sum(v & 1 for v in vec)

            before = resident_pages()
            self.assertLess(before, 16, "the page cache could not be dropped")
            with T.Mount(src) as m:
                os.listdir(m.mnt)
                os.stat(m.path("w.npy"))
                with open(m.path("manifest.json")) as f:
                    json.load(f)
                after = resident_pages()
            os.close(fd)
            # The header is a few hundred bytes: one page (plus readahead of
            # the first read) at most, against 16384 pages of data.
            self.assertLess(after, 64, after)


if __name__ == "__main__":
    T.main()
