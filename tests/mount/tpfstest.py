"""Helpers for tests that really mount tpfs.

Everything here is written from the format specifications, independently of
tpfs: a Safetensors writer and reader (struct + json), the expected NumPy
array of each tensor (BF16 widened by moving its bits to the high half of a
float32), and the expected .npy bytes (NumPy's own np.save).

Environment:
  TPFS_BIN           the tpfs executable (required)
  TPFS_REALDATA      folder of real Safetensors files from other writers
  TPFS_TEST_MODE     "mt" (default) or "single": run the daemon with -s
  TPFS_REQUIRE_FUSE  "1": a missing /dev/fuse fails instead of skipping
"""

import gc
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

TPFS = os.environ.get("TPFS_BIN", "tpfs")
MODE = os.environ.get("TPFS_TEST_MODE", "mt")

# Safetensors dtype -> (numpy dtype served, bits per element in the file).
NATIVE = {
    "BOOL": np.dtype("|b1"), "U8": np.dtype("|u1"), "I8": np.dtype("|i1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}
BITS = {"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "F16": 16,
        "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64,
        "F64": 64, "C64": 64, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E4M3FNUZ": 8,
        "F8_E5M2FNUZ": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


def fuse_available():
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def require_fuse(test):
    """Skip (or, in CI, fail) when this machine cannot mount."""
    if fuse_available():
        return
    if os.environ.get("TPFS_REQUIRE_FUSE") == "1":
        test.fail("/dev/fuse or fusermount3 is missing, and TPFS_REQUIRE_FUSE=1")
    test.skipTest("no /dev/fuse or fusermount3 here")


class FuseCase(unittest.TestCase):
    """The base of the suites that mount: every test needs FUSE (it skips
    without it, or fails under TPFS_REQUIRE_FUSE=1), and the class has a
    temporary folder, cls.tmp, for what its tests share: prepare(tmp) fills
    it once, and it goes at the end."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tpfs-test-")
        try:
            cls.prepare(cls.tmp)
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def prepare(cls, tmp):
        """Make what the class's tests share in tmp."""

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        require_fuse(self)


def write_safetensors(path, tensors, metadata=None, pad=True, data_order=None,
                      metadata_null=False):
    """Write a Safetensors file.

    tensors: list of (name, dtype, shape, raw bytes). data_order: names in
    the order their bytes are laid out (default: as listed). pad: pad the
    header with spaces to a multiple of 8, as the reference writer does.
    """
    order = data_order or [t[0] for t in tensors]
    by_name = {t[0]: t for t in tensors}
    header = {}
    if metadata_null:
        header["__metadata__"] = None
    elif metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    spans = {}
    for name in order:
        raw = by_name[name][3]
        spans[name] = (offset, offset + len(raw))
        offset += len(raw)
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": list(spans[name])}
    text = json.dumps(header, ensure_ascii=False).encode("utf-8")
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(by_name[name][3])


def read_safetensors(path, with_data=True):
    """Parse a file: returns (metadata or the string 'absent', {name: info})
    where info has dtype, shape, begin, end (absolute) and, with_data, the
    raw bytes (only the header is read otherwise)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        meta = header.pop("__metadata__", "absent")
        out = {}
        for name, info in header.items():
            b, e = info["data_offsets"]
            out[name] = {"dtype": info["dtype"], "shape": tuple(info["shape"]),
                         "begin": 8 + n + b, "end": 8 + n + e}
            if with_data:
                f.seek(8 + n + b)
                out[name]["raw"] = f.read(e - b)
    return meta, out


# Minifloat formats: (exponent bits, mantissa bits, bias, style), where the
# style says which codes are special: "ieee" (top exponent: inf and NaN), "fn"
# (only all-ones is NaN, no inf), "fnuz" (0x80 is the only NaN, no -0).
MINIFLOATS = {
    "F8_E4M3": (4, 3, 7, "fn"), "F8_E5M2": (5, 2, 15, "ieee"),
    "F8_E4M3FNUZ": (4, 3, 8, "fnuz"), "F8_E5M2FNUZ": (5, 2, 16, "fnuz"),
}
E2M1 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6])


def minifloat_values(codes, ebits, mbits, bias, style):
    """float64 values of 8-bit codes, from the format's definition."""
    codes = codes.astype(np.int64)
    sign = np.where(codes >> 7, -1.0, 1.0)
    e = (codes >> mbits) & ((1 << ebits) - 1)
    m = codes & ((1 << mbits) - 1)
    frac = m / float(1 << mbits)
    v = np.where(e > 0, np.ldexp(1.0 + frac, e - bias), np.ldexp(frac, 1 - bias))
    v = sign * v
    top = (1 << ebits) - 1
    nan = np.copysign(np.nan, sign)  # a NaN keeps the code's sign bit
    if style == "ieee":
        v = np.where((e == top) & (m == 0), sign * np.inf, v)
        v = np.where((e == top) & (m != 0), nan, v)
    elif style == "fn":
        v = np.where((codes & 0x7F) == 0x7F, nan, v)
    else:
        v = np.where(codes == 0x80, np.nan, v)
    return v


def mxfp4_values(blocks, scales):
    """float64 values of a GPT-OSS MXFP4 pair: blocks [..., G, 16] uint8,
    scales [..., G] uint8 -> [..., G * 32]. Low nibble first; each group of
    32 values times 2^(scale - 127); scale 255 is NaN."""
    lo = E2M1[blocks & 0x0F]
    hi = E2M1[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    factor = np.where(scales == 255, np.nan, np.ldexp(1.0, scales.astype(np.int64) - 127))
    vals = vals * factor[..., None]
    return vals.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32)


def exact_bf16_bits(values):
    """The bfloat16 bits, as '|V2', of float32 values that bfloat16 holds
    exactly (it has float32's exponent and 7 of its mantissa bits: MXFP4
    values have 2 significant bits); NaN as a quiet NaN of the same sign."""
    f = np.asarray(values, dtype=np.float32)
    u = f.view(np.uint32)
    nan = np.isnan(f)
    assert not (u[~nan] & 0xFFFF).any(), "not exact in bfloat16"
    bits = np.where(nan, (u >> 16) & 0x8000 | 0x7FC0, u >> 16).astype(np.uint16)
    return bits.view("|V2")


def choice(opts, key, default):
    dtype = opts.get("dtype", "auto")
    return dtype if dtype != "auto" else opts.get(key, default)


def expected_array(dtype, shape, raw, opts=None):
    """The array tpfs must serve for a tensor under the mount options."""
    with np.errstate(all="ignore"):  # overflow to inf is the point of f16
        return _expected_array(dtype, shape, raw, opts or {})


def _expected_array(dtype, shape, raw, opts):
    cast = opts.get("dtype", "auto")
    if dtype in NATIVE:
        a = np.frombuffer(raw, dtype=NATIVE[dtype]).reshape(shape)
        if cast == "f32" and dtype in ("F16", "F64"):
            return a.astype("<f4")
        if cast == "f16" and dtype in ("F32", "F64"):
            return a.astype("<f2")
        return a
    codes = np.frombuffer(raw, dtype=np.uint8)
    if dtype == "BF16":
        out = choice(opts, "bf16", "f32")
        if out == "raw":
            return np.frombuffer(raw, dtype="|V2").reshape(shape)
        f32 = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
        return (f32 if out == "f32" else f32.astype("<f2")).reshape(shape)
    if dtype in MINIFLOATS:
        out = choice(opts, "fp8", "f16")
        if out == "raw":
            return codes.reshape(shape)
        v = minifloat_values(codes, *MINIFLOATS[dtype])
        return v.astype("<f2" if out == "f16" else "<f4").reshape(shape)
    if dtype == "F8_E8M0":
        if cast == "auto" and opts.get("fp8") == "raw":
            return codes.reshape(shape)
        v = np.where(codes == 255, np.nan, np.ldexp(1.0, codes.astype(np.int64) - 127))
        return v.astype("<f2" if cast == "f16" else "<f4").reshape(shape)
    if dtype == "F4":
        v = np.stack([E2M1[codes & 0x0F], E2M1[codes >> 4]], axis=-1).reshape(shape)
        return v.astype("<f4" if cast == "f32" else "<f2")
    if dtype in ("F6_E2M3", "F6_E3M2"):
        return codes.copy()  # the bytes, flat: the format defines no packing
    raise AssertionError("unknown dtype " + dtype)


def expected_mxfp4(blocks_raw, blocks_shape, scales_raw, scales_shape, opts=None):
    blocks = np.frombuffer(blocks_raw, dtype=np.uint8).reshape(blocks_shape)
    scales = np.frombuffer(scales_raw, dtype=np.uint8).reshape(scales_shape)
    out = choice(opts or {}, "mxfp4", "f32")
    with np.errstate(all="ignore"):
        v = mxfp4_values(blocks, scales)
        if out == "bf16":
            return exact_bf16_bits(v.astype(np.float32))
        return v.astype("<f2" if out == "f16" else "<f4")


def npy_bytes(arr):
    """The exact .npy file NumPy itself writes for arr."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def same_bits(a, b):
    """Arrays equal bit for bit (NaN payloads and signed zeros included)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def same_values(a, b):
    """Equal bit for bit, except that two NaNs of the same sign match
    whatever their payloads (which conversions may choose freely)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.dtype == np.dtype("|V2"):  # bfloat16 bits
        bits_a, bits_b = a.view("<u2"), b.view("<u2")
        def isnan(bits):
            return ((bits & 0x7F80) == 0x7F80) & ((bits & 0x7F) != 0)
        both_nan = isnan(bits_a) & isnan(bits_b)
        same_sign = (bits_a >> 15) == (bits_b >> 15)
    elif a.dtype.kind == "f":
        both_nan = np.isnan(a) & np.isnan(b)
        same_sign = np.signbit(a) == np.signbit(b)
        bits_a = a.view("u%d" % a.itemsize)
        bits_b = b.view("u%d" % b.itemsize)
    else:
        return same_bits(a, b)
    return bool(np.all(np.where(both_nan, same_sign, bits_a == bits_b)))


class Mount:
    """tpfs mounted in the foreground for the duration of a with block."""

    def __init__(self, src, opts=None, extra=None, mnt=None, env=None):
        self.src = src
        self.opts = opts
        self.extra = extra or []
        self.env = dict(os.environ, **env) if env else None
        self.own_mnt = mnt is None
        self.mnt = mnt or tempfile.mkdtemp(prefix="tpfs-mnt-")
        self.proc = None
        self.stderr_path = None
        self.returncode = None

    def command(self):
        cmd = [TPFS, "mount", self.src, self.mnt, "-f"]
        if MODE == "single":
            cmd.append("-s")
        if self.opts:
            cmd += ["-o", self.opts]
        return cmd + self.extra

    def __enter__(self):
        fd, self.stderr_path = tempfile.mkstemp(prefix="tpfs-err-")
        self.err = os.fdopen(fd, "w+")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=self.err, env=self.env)
        deadline = time.time() + 20
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None:
                raise AssertionError("tpfs exited %d before mounting: %s"
                                     % (self.proc.returncode, self.stderr()))
            if time.time() > deadline:
                self.proc.kill()
                raise AssertionError("tpfs did not mount within 20 s")
            time.sleep(0.01)
        return self

    def path(self, rel):
        return os.path.join(self.mnt, rel)

    def stderr(self):
        self.err.flush()
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def unmount(self):
        if self.proc is None:
            return
        if self.proc.poll() is not None:  # the daemon died: detach what it left
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        if self.proc.poll() is None and os.path.ismount(self.mnt):
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if r.returncode != 0:  # still busy: a leaked open file or mapping
                gc.collect()
                r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
                raise AssertionError("the mount was still busy at the end of the test")
        try:
            self.returncode = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
        self.proc = None

    def __exit__(self, exc_type, exc, tb):
        self.unmount()
        text = self.stderr()
        self.err.close()
        os.unlink(self.stderr_path)
        if self.own_mnt:
            os.rmdir(self.mnt)
        if exc_type is None:
            check_daemon_output(self.returncode, text)
        return False


def check_daemon_output(returncode, text):
    if returncode != 0:
        raise AssertionError("tpfs exited %s: %s" % (returncode, text))
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "ThreadSanitizer"):
        if marker in text:
            raise AssertionError("sanitizer report in the daemon's output:\n" + text)


def run_tpfs(*args, timeout=60):
    return subprocess.run([TPFS, *args], capture_output=True, text=True,
                          timeout=timeout)


def check_source_tree(test, src_root, mount, manifest, opts=None):
    """Every tensor in manifest equals its source, by np.load, by mmap and
    byte for byte against np.save of the independent expectation. Returns
    the number of tensors checked."""
    checked = 0
    cache = {}

    def part(file, name):
        if file not in cache:
            cache[file] = read_safetensors(os.path.join(src_root, file))[1]
        return cache[file][name]

    for t in manifest["tensors"]:
        if "sources" in t:
            b, s = t["sources"]
            bi, si = part(b["file"], b["name"]), part(s["file"], s["name"])
            test.assertEqual(t["source_dtype"], "MXFP4")
            test.assertEqual([b["range"], s["range"]],
                             [[bi["begin"], bi["end"]], [si["begin"], si["end"]]])
            want = expected_mxfp4(bi["raw"], bi["shape"], si["raw"], si["shape"], opts)
        else:
            info = part(t["source_file"], t["name"])
            test.assertEqual(t["source_dtype"], info["dtype"])
            test.assertEqual(tuple(t["source_shape"]), info["shape"])
            test.assertEqual(t["source_range"], [info["begin"], info["end"]])
            want = expected_array(info["dtype"], info["shape"], info["raw"], opts)
        test.assertEqual(tuple(t["shape"]), want.shape, t["name"])
        test.assertEqual(t["dtype"], want.dtype.str, t["name"])
        path = mount.path(t["path"])
        with open(path, "rb") as f:
            data = f.read()
        test.assertEqual(os.stat(path).st_size, len(data), t["name"])
        test.assertEqual(t["npy_bytes"], len(data), t["name"])
        expected = npy_bytes(want)
        test.assertEqual(len(data), len(expected), t["name"])
        header = len(expected) - want.nbytes
        test.assertEqual(data[:header], expected[:header], t["name"])
        # Served as stored and widened BF16 keep every bit, NaN payloads
        # included; other conversions may pick their NaN payloads.
        same = same_bits if t["conversion"] in ("none", "bf16->f32") or \
            "raw" in t["conversion"] else same_values
        if same is same_bits:
            test.assertEqual(data, expected, t["name"])
        got = np.load(path, allow_pickle=False)
        test.assertTrue(same(got, want), t["name"])
        mapped = np.load(path, mmap_mode="r")
        test.assertTrue(same(np.asarray(mapped), want), t["name"])
        del mapped
        checked += 1
    return checked


def main():
    """Run the module's tests, or those named on the command line
    (Class or Class.test_name); the last line is 'N passed, N failed'."""
    loader = unittest.TestLoader()
    module = sys.modules["__main__"]
    suite = (loader.loadTestsFromNames(sys.argv[1:], module) if sys.argv[1:]
             else loader.loadTestsFromModule(module))
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    # Subtests report one failure each: count the tests they belong to.
    def test_id(t):
        return getattr(t, "test_case", t).id()
    failed = len({test_id(t) for t, _ in result.failures + result.errors})
    skipped = len({test_id(t) for t, _ in result.skipped})
    passed = result.testsRun - failed - skipped
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(0 if failed == 0 else 1)


def wait_unmounted(path, seconds=20):
    deadline = time.time() + seconds
    while os.path.ismount(path):
        if time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    return proc.wait(timeout=20)
