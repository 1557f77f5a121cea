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


def read_safetensors(path):
    """Parse a file: returns (metadata or the string 'absent', {name: info})
    where info has dtype, shape, begin, end (absolute) and raw bytes."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", "absent")
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = {"dtype": info["dtype"], "shape": tuple(info["shape"]),
                     "begin": 8 + n + b, "end": 8 + n + e,
                     "raw": blob[8 + n + b:8 + n + e]}
    return meta, out


def expected_array(dtype, shape, raw):
    """The array tpfs must serve for a tensor, or None if not served."""
    if dtype in NATIVE:
        return np.frombuffer(raw, dtype=NATIVE[dtype]).reshape(shape)
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
        return bits.view("<f4").reshape(shape)
    return None


def npy_bytes(arr):
    """The exact .npy file NumPy itself writes for arr."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def same_bits(a, b):
    """Arrays equal bit for bit (NaN payloads and signed zeros included)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


class Mount:
    """tpfs mounted in the foreground for the duration of a with block."""

    def __init__(self, src, opts=None, extra=None, mnt=None):
        self.src = src
        self.opts = opts
        self.extra = extra or []
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
                                     stderr=self.err)
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
        if self.proc.poll() is None and os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
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


def check_source_tree(test, src_root, mount, manifest):
    """Every tensor in manifest equals its source, by np.load, by mmap and
    byte for byte against np.save of the independent expectation."""
    checked = 0
    for t in manifest["tensors"]:
        meta, infos = read_safetensors(os.path.join(src_root, t["source_file"]))
        info = infos[t["name"]]
        test.assertEqual(t["source_dtype"], info["dtype"])
        test.assertEqual(tuple(t["shape"]), info["shape"])
        test.assertEqual(t["source_range"], [info["begin"], info["end"]])
        want = expected_array(info["dtype"], info["shape"], info["raw"])
        if want is None:
            test.assertIsNone(t["path"], t["name"])
            continue
        path = mount.path(t["path"])
        with open(path, "rb") as f:
            data = f.read()
        test.assertEqual(os.stat(path).st_size, len(data), t["name"])
        test.assertEqual(t["npy_bytes"], len(data), t["name"])
        test.assertEqual(data, npy_bytes(want), t["name"])
        test.assertEqual(t["dtype"], want.dtype.str)
        got = np.load(path, allow_pickle=False)
        test.assertTrue(same_bits(got, want), t["name"])
        mapped = np.load(path, mmap_mode="r")
        test.assertTrue(same_bits(np.asarray(mapped), want), t["name"])
        del mapped
        checked += 1
    return checked


def main():
    """Run the module's tests; the last line is 'N passed, N failed'."""
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(sys.modules["__main__"])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
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
