#!/usr/bin/python3
"""Read speed through a tpfs mount, as ratios to anchors measured in the
same run: np.load through the mount next to np.load of the same .npy on
disk, dd through the mount next to dd of the source, four readers at
once next to one, and random rows of a mapped .npy (np.load with
mmap_mode='r') next to the same rows of the file on disk.

    tools/bench-read.py [--build build] [--work /tmp/tpfs-bench] [--runs 5]
                        [--warm-gib 4] [--only NAME,...] [--readahead-kb KB]

Writes once (in WORK) a model with an F32 tensor of 1 GiB, a BF16 tensor of
1 GiB (2 GiB served as float32), an MXFP4 pair shaped like one GPT-OSS
gate_up_proj (282 MB stored, 2.1 GB served) and four BF16 tensors of 256
MiB, plus the .npy files a mount serves for the first three, written to
disk by `tpfs cat` (the anchors). It also mounts build/bench-null-fuse, a
FUSE server that answers reads from memory and does nothing else, with
tpfs's settings and readahead: its figures are the most any FUSE server
gets on this machine, the ceiling of tpfs's; and the model again with
-o direct_io (tensor files bypass the kernel's page cache). Every step
reads with the source in the page cache (what tpfs itself costs; read
again just before the step, as some machines page out what was not
touched for a minute), and the mount's own page cache emptied first
(POSIX_FADV_DONTNEED on the mounted file), except "second read".

Before each timed step it touches WARM GiB of memory, since on some virtual
machines the first touch of memory is very slow and every read here fills
fresh memory (see the README). It runs RUNS rounds of every step, so that
a slow spell of the machine hits every step alike, and prints each step's
median and every round's figure, with how busy the CPUs were and how
many of them the daemon and the readers used, then each goal's ratio as
the median of the rounds' ratios (each of two figures of the same round),
and for np.load the reader's own CPU time per byte from disk over that
through the mount: where the reader keeps its CPU busy, the most the
mount can give it; the daemons' peak memory (VmHWM) at the end. Asserts
nothing.
"""

import argparse
import mmap
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

GB = 1e9


def warm(gib):
    """Touch gib GiB once, a page at a time."""
    if gib <= 0:
        return
    m = mmap.mmap(-1, int(gib * (1 << 30)))
    for off in range(0, len(m), 1 << 12):
        m[off] = 1
    m.close()


def cpu_times(pids):
    """(busy, total) seconds of the machine's CPUs, the CPU seconds of the
    processes pids (the daemons), and the CPU seconds of this process and
    its children (the readers)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    daemons = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            p = f.read().rsplit(")", 1)[1].split()
        daemons += (int(p[11]) + int(p[12])) / hz
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((sum(v) - v[3] - v[4]) / hz, sum(v) / hz, daemons,
            me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime)


def drop_cache(path):
    """Empty the page cache of one file (the mounted one, for tpfs: its
    next read comes from the daemon)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cache(path):
    """Bring a file into the page cache; returns path. Done before every
    step that reads it, not once: some machines page out what was not
    touched for a minute (a proactive reclaim such as DAMON's), and an
    anchor read from disk is no anchor."""
    buf = bytearray(8 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return path


def dd(path):
    """GB/s of reading path with 1 MiB reads into one buffer."""
    size = os.path.getsize(path)
    buf = bytearray(1 << 20)
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return size / (time.perf_counter() - t) / GB


def npload(path):
    """GB/s of np.load(path) (the array's bytes)."""
    t = time.perf_counter()
    a = np.load(path)
    dt = time.perf_counter() - t
    return a.nbytes / dt / GB


def mmap_rows(path, rows=256):
    """GB/s of reading `rows` random rows (the same ones each run) of the
    2-D .npy at path through np.load(mmap_mode='r'): each touch of a row
    faults its pages in, with what the kernel reads around them."""
    a = np.load(path, mmap_mode="r")
    pick = np.random.default_rng(0).integers(0, a.shape[0], rows)
    t = time.perf_counter()
    total = 0.0
    for r in pick:
        total += float(a[r].sum())
    dt = time.perf_counter() - t
    return rows * a[0].nbytes / dt / GB


def npload_many(paths):
    """Aggregate GB/s of len(paths) processes each np.load-ing one path at
    once (timed from the start of the first to the end of the last)."""
    code = ("import numpy as np, sys; a = np.load(sys.argv[1]); "
            "sys.stdout.write(str(a.nbytes))")
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, p], stdout=subprocess.PIPE)
             for p in paths]
    total = sum(int(p.communicate()[0]) for p in procs)
    return total / (time.perf_counter() - t) / GB


class Mount:
    def __init__(self, argv, mnt):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        self.proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not os.path.ismount(mnt):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("%s did not mount %s" % (argv[0], mnt))
            time.sleep(0.01)

    def path(self, name):
        return os.path.join(self.mnt, name)

    def hwm(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def readahead_file(self):
        st = os.stat(self.mnt)
        return "/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(st.st_dev), os.minor(st.st_dev))

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)
        self.proc.wait()


def make_model(build, work):
    model = os.path.join(work, "model")
    src = os.path.join(model, "model.safetensors")
    if not os.path.exists(src):
        args = [os.path.join(build, "tpfs-gen"), model, "--quiet",
                "--tensor", "f32=f32:16384x16384", "--tensor", "bf16=bf16:16384x32768",
                "--tensor", "mxfp4=mxfp4:32x5760x2880"]
        for i in range(4):
            args += ["--tensor", "p%d=bf16:8192x16384" % i]
        subprocess.run(args, check=True)
    disk = os.path.join(work, "disk")
    os.makedirs(disk, exist_ok=True)
    for name in ("f32", "bf16", "mxfp4"):
        out = os.path.join(disk, name + ".npy")
        if not os.path.exists(out):
            with open(out, "wb") as f:
                subprocess.run([os.path.join(build, "tpfs"), "cat", model, name], stdout=f,
                               check=True)
    return model, src, disk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--work", default="/tmp/tpfs-bench")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warm-gib", type=float, default=4)
    ap.add_argument("--only", default="")
    ap.add_argument("--readahead-kb", type=int, default=0,
                    help="set both mounts' read_ahead_kb (root only; default: tpfs's)")
    a = ap.parse_args()
    tpfs = os.path.abspath(os.path.join(a.build, "tpfs"))
    model, src, disk = make_model(os.path.abspath(a.build), a.work)
    mnt = os.path.join(a.work, "mnt")
    m = Mount([tpfs, "mount", model, mnt, "-f"], mnt)
    # the same model mounted with -o direct_io: no page cache for tensors
    dmnt = os.path.join(a.work, "mnt-direct")
    d = Mount([tpfs, "mount", model, dmnt, "-f", "-o", "direct_io"], dmnt)
    # The ceiling: a FUSE server that answers reads from one buffer, with
    # tpfs's settings and readahead, serving an F32 .npy of f32.npy's size.
    null = Mount([os.path.join(os.path.abspath(a.build), "bench-null-fuse"),
                  os.path.join(a.work, "null"), "1024"], os.path.join(a.work, "null"))
    try:
        if a.readahead_kb:
            with open(m.readahead_file(), "w") as f:
                f.write(str(a.readahead_kb))
        with open(m.readahead_file()) as f, open(null.readahead_file(), "w") as g:
            g.write(f.read())
    except OSError:
        pass  # not root: both keep the kernel's default
    with open(m.readahead_file()) as f:
        print("read_ahead_kb of both mounts: %s" % f.read().strip())

    # Before every step, the files it reads from are brought into the
    # page cache again (see cache()).
    def ondisk(name):
        return cache(os.path.join(disk, name))

    def fresh(name):  # the mount's page cache of name emptied
        cache(src)
        drop_cache(m.path(name))
        return m.path(name)

    def direct(name):  # a file of the -o direct_io mount (nothing cached)
        cache(src)
        return d.path(name)

    def nullfresh():
        drop_cache(null.path("null.npy"))
        return null.path("null.npy")

    def second(name):  # read once, so the next read is from the page cache
        cache(src)
        return cache(m.path(name))

    # Each step: its name, what to do before the clock starts (empty the
    # mount's page cache: that is not the reader's time), and the read.
    steps = [
        ("dd source", lambda: cache(src), dd),
        ("dd f32 through the mount", lambda: fresh("f32.npy"), dd),
        ("dd f32 second read", lambda: second("f32.npy"), dd),
        ("dd through a null FUSE server", nullfresh, dd),
        ("dd bf16->f32 through the mount", lambda: fresh("bf16.npy"), dd),
        ("dd mxfp4->f32 through the mount", lambda: fresh("mxfp4.npy"), dd),
        ("np.load f32 .npy on disk", lambda: ondisk("f32.npy"), npload),
        ("np.load f32 through the mount", lambda: fresh("f32.npy"), npload),
        ("np.load through a null FUSE server", nullfresh, npload),
        ("np.load bf16 .npy on disk", lambda: ondisk("bf16.npy"), npload),
        ("np.load bf16->f32 through the mount", lambda: fresh("bf16.npy"), npload),
        ("np.load mxfp4 .npy on disk", lambda: ondisk("mxfp4.npy"), npload),
        ("np.load mxfp4->f32 through the mount", lambda: fresh("mxfp4.npy"), npload),
        ("np.load f32, -o direct_io", lambda: direct("f32.npy"), npload),
        ("np.load bf16->f32, -o direct_io", lambda: direct("bf16.npy"), npload),
        ("np.load mxfp4->f32, -o direct_io", lambda: direct("mxfp4.npy"), npload),
        ("np.load 1 process (p0)", lambda: [fresh("p0.npy")], npload_many),
        ("np.load 4 processes (p0..p3)",
         lambda: [fresh("p%d.npy" % i) for i in range(4)], npload_many),
        ("mmap random rows, f32 .npy on disk", lambda: ondisk("f32.npy"),
         mmap_rows),
        ("mmap random rows, f32 through the mount", lambda: fresh("f32.npy"), mmap_rows),
        ("mmap random rows, bf16->f32 through the mount", lambda: fresh("bf16.npy"),
         mmap_rows),
    ]
    only = [s for s in a.only.split(",") if s]
    steps = [st for st in steps if not only or any(o in st[0] for o in only)]
    # Round by round, every step once per round: a slow spell of the
    # machine then hits every step alike instead of all runs of one.
    # Beside each rate: how busy the machine's CPUs were during the step,
    # and how many of them tpfs's daemon kept busy.
    rates = {name: [] for name, _, _ in steps}
    busy = {name: [] for name, _, _ in steps}
    daemon = {name: [] for name, _, _ in steps}
    reader = {name: [] for name, _, _ in steps}
    for run in range(a.runs):
        for name, setup, fn in steps:
            warm(a.warm_gib)
            arg = setup()
            b0, t0, d0, r0 = cpu_times([m.proc.pid, d.proc.pid])
            w0 = time.perf_counter()
            rates[name].append(fn(arg))
            wall = max(time.perf_counter() - w0, 1e-9)
            b1, t1, d1, r1 = cpu_times([m.proc.pid, d.proc.pid])
            busy[name].append(100 * (b1 - b0) / max(t1 - t0, 1e-9))
            daemon[name].append((d1 - d0) / max(t1 - t0, 1e-9) * os.cpu_count())
            reader[name].append((r1 - r0) / wall)
        print("round %d of %d done" % (run + 1, a.runs), file=sys.stderr)
    print("%-46s %6s %5s %7s %6s  %s" % ("step", "GB/s", "busy", "daemon", "reader",
                                         "each round (GB/s)"))
    for name, _, _ in steps:
        print("%-46s %6.2f %4.0f%% %7.2f %6.2f  %s" % (
            name, statistics.median(rates[name]), statistics.median(busy[name]),
            statistics.median(daemon[name]), statistics.median(reader[name]),
            " ".join("%.2f" % r for r in rates[name])))
    print("(busy: the machine's CPUs during the step; daemon: the CPUs tpfs's "
          "daemon kept busy, of %d; reader: the CPUs the reading processes kept "
          "busy, 1.00 being one CPU all the time)" % os.cpu_count())
    hwm = m.hwm()
    dhwm = d.hwm()
    m.close()
    d.close()
    null.close()

    def ratio(what, num, den, goal):
        """The median of the rounds' ratios, each of two steps of the
        same round."""
        if num in rates and den in rates:
            each = [x / y for x, y in zip(rates[num], rates[den])]
            print("%-56s %5.2f  %-16s %s" % (what, statistics.median(each),
                                             "(goal >= %.2f)" % goal if goal else "",
                                             " ".join("%.2f" % r for r in each)))

    def ceiling(what, num, den):
        """What a reader that keeps its CPU busy gets through the mount
        against the disk: the CPU seconds per byte its own process spends
        reading from disk over those it spends reading through the mount
        (the kernel's work in the reader: copies, page-cache pages)."""
        if num in rates and den in rates:
            each = [(rd / xd) / (rn / xn) for xn, rn, xd, rd in
                    zip(rates[num], reader[num], rates[den], reader[den]) if rn > 0]
            if each:
                print("%-56s %5.2f  %-16s %s" % (what, statistics.median(each), "",
                                                 " ".join("%.2f" % r for r in each)))

    print("\n%-56s %5s  %-16s %s" % ("ratio", "", "", "each round"))
    ratio("np.load f32: mount / disk", "np.load f32 through the mount",
          "np.load f32 .npy on disk", 0.8)
    for kind in ("f32", "bf16", "mxfp4"):
        mount = "np.load %s through the mount" % (kind if kind == "f32" else kind + "->f32")
        ceiling("np.load %s: the reader's CPU per byte, disk / mount" % kind, mount,
                "np.load %s .npy on disk" % kind)
    ratio("np.load: null FUSE server / disk (FUSE's ceiling)",
          "np.load through a null FUSE server", "np.load f32 .npy on disk", 0)
    ratio("np.load f32: mount / null FUSE server", "np.load f32 through the mount",
          "np.load through a null FUSE server", 0)
    ratio("dd: null FUSE server / source (FUSE's ceiling)",
          "dd through a null FUSE server", "dd source", 0)
    ratio("np.load bf16->f32: mount / disk", "np.load bf16->f32 through the mount",
          "np.load bf16 .npy on disk", 0.75)
    ratio("np.load mxfp4->f32: mount / disk", "np.load mxfp4->f32 through the mount",
          "np.load mxfp4 .npy on disk", 0.75)
    ratio("dd bf16->f32 / dd f32, through the mount", "dd bf16->f32 through the mount",
          "dd f32 through the mount", 0.9)
    ratio("dd f32 through the mount / dd source", "dd f32 through the mount",
          "dd source", 0.4)
    ratio("dd f32 second read / dd source", "dd f32 second read", "dd source", 0.8)
    for kind in ("f32", "bf16->f32", "mxfp4->f32"):
        disk_step = "np.load %s .npy on disk" % kind.split("-")[0]
        ratio("np.load %s: -o direct_io / disk" % kind, "np.load %s, -o direct_io" % kind,
              disk_step, 0.8 if kind == "f32" else 0.75)
        ceiling("np.load %s: the reader's CPU per byte, disk / direct_io" % kind,
                "np.load %s, -o direct_io" % kind, disk_step)
    ratio("np.load, 4 processes at once / 1 process", "np.load 4 processes (p0..p3)",
          "np.load 1 process (p0)", 1.5)
    ratio("mmap random rows, f32: mount / disk", "mmap random rows, f32 through the mount",
          "mmap random rows, f32 .npy on disk", 0)
    ratio("mmap random rows: bf16->f32 / f32, through the mount",
          "mmap random rows, bf16->f32 through the mount",
          "mmap random rows, f32 through the mount", 0)
    print("\ndaemons' peak memory (VmHWM): %.0f MiB, with -o direct_io %.0f MiB "
          "(cache_size 256 MiB)" % (hwm / 2**20, dhwm / 2**20))


if __name__ == "__main__":
    main()
