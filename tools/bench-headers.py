#!/usr/bin/python3
"""How mounting scales with the number of tensors: mount time, the daemon's
peak memory (VmHWM), `ls -l` of the mount and `tpfs ls`, for models of many
small tensors (one file with N tensors, and N tensors in 4 shards with an
index), next to a one-tensor model as the baseline.

    tools/bench-headers.py [--tpfs build/tpfs] [--counts 100000,1000000] [--runs 3]

Prints, per model: the bytes of its headers, medians of the times, the
daemon's peak memory, and per tensor the daemon's (then `tpfs ls`'s) peak
memory beyond the headers' bytes and the one-tensor baseline. Touches 1 GiB
of memory before each timed step: on some virtual machines the first touch
of memory is slow enough to swamp what is measured. Needs a FUSE mount.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def warm():
    """Touch 1 GiB once, so that what follows does not pay for fresh pages."""
    b = bytearray(1 << 30)
    b[::4096] = b"\1" * len(b[::4096])
    del b


def write_shard(path, names, first):
    """A .safetensors file of one F32 scalar per name; returns its header's
    length."""
    parts = []
    for i, name in enumerate(names):
        parts.append('"%s":{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}'
                     % (name, 4 * i, 4 * i + 4))
    text = ("{" + ",".join(parts) + "}").encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.truncate(8 + len(text) + 4 * len(names))
    return len(text)


def names(n):
    """Names like a real checkpoint's: layer, block, parameter."""
    return ["model.layers.%d.block.%d.weight" % (i // 64, i % 64) for i in range(n)]


def make_model(root, n, shards):
    os.makedirs(root)
    all_names = names(n)
    if shards == 1:
        return write_shard(os.path.join(root, "model.safetensors"), all_names, 0)
    total, weight_map = 0, {}
    per = (n + shards - 1) // shards
    for k in range(shards):
        file = "model-%05d-of-%05d.safetensors" % (k + 1, shards)
        part = all_names[k * per:(k + 1) * per]
        total += write_shard(os.path.join(root, file), part, 0)
        weight_map.update({name: file for name in part})
    with open(os.path.join(root, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return total


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def one_run(tpfs, src, mnt):
    """Mount, list, unmount: (mount s, HWM after mounting, ls -l s, HWM
    after it)."""
    warm()
    t = time.perf_counter()
    proc = subprocess.Popen([tpfs, "mount", src, mnt, "-f"], stderr=subprocess.DEVNULL)
    while not os.path.ismount(mnt):
        if proc.poll() is not None:
            raise SystemExit("tpfs exited %d before mounting %s" % (proc.returncode, src))
        time.sleep(0.002)
    mount_s = time.perf_counter() - t
    hwm_mounted = vm_hwm(proc.pid)
    warm()
    ls_s = timed(["ls", "-l", mnt])
    hwm_listed = vm_hwm(proc.pid)
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    proc.wait()
    return mount_s, hwm_mounted, ls_s, hwm_listed


def tool_run(tpfs, src):
    """`tpfs ls SRC`: (seconds, peak resident bytes), in a child of its own
    so that its peak is its alone."""
    warm()
    r, w = os.pipe()
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        with open(os.devnull, "w") as null:
            rc = subprocess.run([tpfs, "ls", src], stdout=null).returncode
        os.write(w, struct.pack("<q", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
        os._exit(rc)
    os.close(w)
    maxrss = struct.unpack("<q", os.read(r, 8))[0]
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status:
        raise SystemExit("tpfs ls %s failed" % src)
    return time.perf_counter() - t, maxrss * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tpfs", default="build/tpfs", help="the tpfs binary")
    ap.add_argument("--counts", default="100000,1000000",
                    help="tensor counts, comma-separated")
    ap.add_argument("--runs", type=int, default=3, help="runs of each step (medians)")
    a = ap.parse_args()
    tpfs = os.path.abspath(a.tpfs)
    work = tempfile.mkdtemp(prefix="tpfs-bench-headers-")
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    try:
        base_src = os.path.join(work, "base")
        make_model(base_src, 1, 1)
        base = statistics.median(one_run(tpfs, base_src, mnt)[1] for _ in range(a.runs))
        print("baseline (1 tensor): VmHWM %.1f MiB" % (base / 2**20))
        print("%-24s %11s %8s %10s %12s %8s %10s %14s" % (
            "model", "header B", "mount s", "VmHWM MiB", "B/tensor", "ls -l s",
            "tpfs ls s", "tpfs ls B/t."))
        for n in (int(x) for x in a.counts.split(",")):
            for shards in (1, 4):
                src = os.path.join(work, "m%d-%d" % (n, shards))
                header = make_model(src, n, shards)
                runs = [one_run(tpfs, src, mnt) for _ in range(a.runs)]
                mount_s = statistics.median(r[0] for r in runs)
                hwm = max(max(r[1], r[3]) for r in runs)
                ls_s = statistics.median(r[2] for r in runs)
                tools = [tool_run(tpfs, src) for _ in range(a.runs)]
                tool_s = statistics.median(t[0] for t in tools)
                tool_rss = max(t[1] for t in tools)
                per = (hwm - base - header) / n
                tool_per = (tool_rss - base - header) / n
                print("%-24s %11d %8.2f %10.1f %12.0f %8.2f %10.2f %14.0f" % (
                    "%d tensors, %d file%s" % (n, shards, "s" if shards > 1 else ""),
                    header, mount_s, hwm / 2**20, per, ls_s, tool_s, tool_per))
                sys.stdout.flush()
                shutil.rmtree(src)
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-uz", mnt])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
