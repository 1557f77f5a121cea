"""A source on a network mount: tpfs over sshfs, from an sshd of the test's
own on 127.0.0.1 (its own host key, client key and config in a temporary
folder; no system service). Every tensor and passed-through file read
through both mounts equals what the files hold, checked against expectations
computed here from the Safetensors files themselves. Then the network mount
is made to die under readers, in the ways it can die: sshfs killed, the ssh
connection lost, the server gone silent (until ssh's keepalive gives up).
Each reader must get EIO within a bounded time, and the daemon must stay up,
keep serving what it holds itself, unmount with `tpfs umount` and exit 0.

Needs sshfs and sshd (Debian's sshfs and openssh-server; tools/deps.sh
--test installs them): without them the tests skip, or fail where
TPFS_REQUIRE_FUSE=1.
"""

import errno
import hashlib
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

import tpfstest as T

rng = np.random.default_rng(20261127)

SSHD = shutil.which("sshd", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
BOUND = 30  # seconds from the mount's death to the reader's EIO
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


def rand_bytes(n):
    return rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()


def require_network_tools(test):
    """Skip (or, with TPFS_REQUIRE_FUSE=1, fail) without sshfs and sshd."""
    T.require_fuse(test)
    missing = [n for n in ("sshfs", "ssh", "ssh-keygen") if not shutil.which(n)]
    if not SSHD:
        missing.append("sshd")
    if not missing:
        return
    why = ("%s not installed (Debian's sshfs and openssh-server; tools/deps.sh "
           "--test installs them)" % ", ".join(missing))
    if os.environ.get("TPFS_REQUIRE_FUSE") == "1":
        test.fail(why + ", and TPFS_REQUIRE_FUSE=1")
    test.skipTest(why)


def build_model(root):
    """The folder the server shares: two shards with an index, an MXFP4 pair
    split across them and passed-through files, laid out as a Hugging Face
    cache snapshot is: the second shard is a symlink to ../../blobs/HASH.
    (Debian's sshfs refuses symlinks that are absolute or climb with '..'
    (contain_symlinks) unless the server follows them: follow_symlinks.)"""
    remote = os.path.join(root, "snapshots", "0123abcd")
    shard1 = [("big", "F32", (4096, 4096), rand_bytes(64 << 20)),
              ("x_blocks", "U8", (256, 1024, 16), rand_bytes(4 << 20)),
              ("f16", "F16", (33, 7), rand_bytes(33 * 7 * 2)),
              ("i32", "I32", (100,), rand_bytes(400))]
    # MXFP4 scales around 2^0, as a model's are, with a NaN scale and the
    # extremes in the first groups.
    scales = rng.integers(110, 135, size=(256, 1024), dtype=np.uint8)
    scales.flat[:3] = [255, 0, 254]
    shard2 = [("x_scales", "U8", (256, 1024), scales.tobytes()),
              ("bf16", "BF16", (1024, 2048), rand_bytes(4 << 20)),
              ("bf16_every_bit", "BF16", (256, 256), np.arange(65536, dtype="<u2").tobytes()),
              ("u8", "U8", (3, 5), rand_bytes(15)),
              ("f8", "F8_E4M3", (16, 16), bytes(range(256)))]
    names = {SHARD1: shard1, SHARD2: shard2}
    for name, tensors in names.items():
        T.write_safetensors(os.path.join(remote, name), tensors, metadata={"format": "pt"})
    blob = os.path.join(root, "blobs", "9f86d081884c7d65")
    os.makedirs(os.path.dirname(blob))
    os.rename(os.path.join(remote, SHARD2), blob)
    os.symlink(os.path.join("..", "..", "blobs", os.path.basename(blob)),
               os.path.join(remote, SHARD2))
    index = {"metadata": {}, "weight_map": {t[0]: f for f, ts in names.items() for t in ts}}
    with open(os.path.join(remote, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    with open(os.path.join(remote, "config.json"), "w") as f:
        json.dump({"hidden_size": 4096, "model_type": "test"}, f)
    with open(os.path.join(remote, "tokenizer.json"), "wb") as f:
        f.write(rand_bytes(300000))
    return remote


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """Every process below pid, from /proc."""
    by_parent = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        by_parent.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for c in by_parent.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def is_sshd(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().startswith(b"sshd")
    except OSError:
        return False


class Sshd:
    """An sshd of the test's own on 127.0.0.1: its host key, the client's
    key as the only authorized one, its config, pid file and log, all in
    tmp. Run as root it needs /run/sshd (its privilege separation folder,
    which the ssh service makes when it starts; here nothing started it)."""

    def __init__(self, tmp, keys):
        self.tmp = tmp
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.port = free_port()
        self.log_path = os.path.join(tmp, "sshd.log")
        config = os.path.join(tmp, "sshd_config")
        with open(config, "w") as f:
            f.write("\n".join([
                "ListenAddress 127.0.0.1",
                "Port %d" % self.port,
                "HostKey %s" % keys.host_key,
                "AuthorizedKeysFile %s" % keys.authorized,
                "PidFile %s" % os.path.join(tmp, "sshd.pid"),
                # the temporary folder is not the user's home: no owner checks
                "StrictModes no",
                "UsePAM %s" % ("yes" if self.account_locked() else "no"),
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PrintMotd no",
                "Subsystem sftp internal-sftp",
                ""]))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", config],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.sessions_seen = set()
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("sshd exited %d: %s" % (self.proc.returncode,
                                                              self.log_text()))
            if time.monotonic() > deadline:
                raise AssertionError("sshd did not listen within 20 s: "
                                     + self.log_text())
            time.sleep(0.02)

    def account_locked(self):
        """With UsePAM no, sshd refuses even a key to an account whose
        password is locked ('!' in /etc/shadow, as where root has none);
        PAM's account check does not, so such an account gets PAM."""
        try:
            with open("/etc/shadow") as f:
                for line in f:
                    name, pw = (line.split(":") + ["", ""])[:2]
                    if name == self.user:
                        return pw.startswith("!")
        except OSError:
            pass
        return False

    def log_text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def sessions(self):
        """The processes that serve the connections (sshd forks one or two
        per connection, which keep running when the listener dies)."""
        now = [p for p in children(self.proc.pid) if is_sshd(p)]
        self.sessions_seen.update(now)
        return now

    def close(self):
        for pid in set(self.sessions()) | self.sessions_seen:
            if is_sshd(pid):
                for sig in (signal.SIGKILL, signal.SIGCONT):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


class Keys:
    def __init__(self, tmp):
        self.host_key = os.path.join(tmp, "host_key")
        self.client_key = os.path.join(tmp, "client_key")
        self.authorized = os.path.join(tmp, "authorized_keys")
        for k in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            "tpfs-test", "-f", k], check=True)
        shutil.copy(self.client_key + ".pub", self.authorized)
        os.chmod(self.authorized, 0o600)


class Sshfs:
    """sshfs of remote from server, in the foreground (so that its process
    is the one to kill), read-only."""

    def __init__(self, server, keys, remote, alive=15, alive_count=3, extra=""):
        self.mnt = tempfile.mkdtemp(prefix="tpfs-sshfs-")
        self.log = tempfile.TemporaryFile("w+")
        opts = ",".join([
            "IdentityFile=" + keys.client_key, "IdentitiesOnly=yes", "BatchMode=yes",
            "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR", "port=%d" % server.port,
            "ServerAliveInterval=%d" % alive, "ServerAliveCountMax=%d" % alive_count,
            "follow_symlinks", "ro"]) + extra
        self.proc = subprocess.Popen(
            # -F /dev/null: no ssh_config of this machine or user applies
            ["sshfs", "-f", "-F", "/dev/null", "-o", opts,
             "%s@127.0.0.1:%s" % (server.user, remote), self.mnt],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None:
                raise AssertionError("sshfs exited %d: %s\nsshd: %s"
                                     % (self.proc.returncode, self.log_text(),
                                        server.log_text()))
            if time.monotonic() > deadline:
                raise AssertionError("sshfs did not mount within 30 s")
            time.sleep(0.02)
        server.sessions()  # remember them, for close

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        # -z: detached even if a reader, or tpfs, still holds a file there
        subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()
        os.rmdir(self.mnt)


# A reader in a process of its own: reads a file through the mount in a loop,
# 1 MiB at a time, each pass after dropping the file's pages from the page
# cache, and the network mount's pages of its sources too (argv[3:]), so that
# every pass reads over the network. Prints a line with the first pass's
# SHA-256, then one with the errno that ended the loop (null at the deadline)
# and when it came (time.monotonic, the same clock for every process).
READER = r"""
import hashlib, json, os, sys, time
path, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
sources = [os.open(p, os.O_RDONLY) for p in sys.argv[3:]]
fd = os.open(path, os.O_RDONLY)
passes, end = 0, {"errno": None}
try:
    while time.monotonic() < deadline:
        for f in sources + [fd]:
            os.posix_fadvise(f, 0, 0, os.POSIX_FADV_DONTNEED)
        h, off = hashlib.sha256(), 0
        while True:
            b = os.pread(fd, 1 << 20, off)
            if not b:
                break
            h.update(b)
            off += len(b)
        passes += 1
        if passes == 1:
            print(json.dumps({"sha256": h.hexdigest(), "bytes": off}), flush=True)
except OSError as e:
    end = {"errno": e.errno, "message": str(e), "at": time.monotonic()}
end["passes"] = passes
print(json.dumps(end), flush=True)
"""


class Reader:
    def __init__(self, path, sources, seconds=120):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-c", READER, path, str(seconds)]
                                     + sources, stdout=subprocess.PIPE)
        self.buf = b""

    def line(self, seconds):
        """The reader's next line; fails after seconds without one."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("%s: no word from the reader in %d s: it hangs"
                                     % (self.path, seconds))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("%s: the reader died (%s)"
                                     % (self.path, self.proc.wait()))
            self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return json.loads(text)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def sha256(data):
    return hashlib.sha256(data).hexdigest()



class NetworkSource(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tpfs-net-")
        cls.remote = build_model(cls.tmp)
        cls.keys = Keys(cls.tmp)
        cls.info = {}
        for shard in (SHARD1, SHARD2):
            cls.info.update(T.read_safetensors(os.path.join(cls.remote, shard))[1])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def setUp(self):
        require_network_tools(self)
        self.server_tmp = tempfile.mkdtemp(prefix="sshd-", dir=self.tmp)
        self.server = Sshd(self.server_tmp, self.keys)
        self.addCleanup(shutil.rmtree, self.server_tmp)
        self.addCleanup(self.server.close)

    def sshfs(self, **kw):
        net = Sshfs(self.server, self.keys, self.remote, **kw)
        self.addCleanup(net.close)
        return net

    def reader(self, mount, name, net, sources, seconds=120):
        r = Reader(mount.path(name), [os.path.join(net.mnt, s) for s in sources], seconds)
        self.addCleanup(r.close)
        return r

    def expected(self, name):
        if name == "x":
            b, s = self.info["x_blocks"], self.info["x_scales"]
            return T.expected_mxfp4(b["raw"], b["shape"], s["raw"], s["shape"])
        i = self.info[name]
        return T.expected_array(i["dtype"], i["shape"], i["raw"])

    def start_readers(self, m, net):
        """A reader of a tensor served as stored (the reply is written from
        the mapping of the network file) and one of a converted MXFP4 pair
        whose halves lie in both shards (converted in the daemon, under its
        SIGBUS guard); each has read its file once, correctly."""
        readers = [self.reader(m, "big.npy", net, [SHARD1]),
                   self.reader(m, "x.npy", net, [SHARD1, SHARD2])]
        for r, name in zip(readers, ("big", "x")):
            first = r.line(120)
            self.assertIn("sha256", first, first)
            self.assertEqual(first["sha256"], sha256(T.npy_bytes(self.expected(name))),
                             name)
        return readers

    def check_readers_fail(self, readers, killed_at):
        for r in readers:
            end = r.line(BOUND + 30)
            self.assertEqual(end["errno"], errno.EIO, (r.path, end))
            self.assertLess(end["at"] - killed_at, BOUND, (r.path, end))
            self.assertEqual(r.proc.wait(timeout=20), 0)

    def check_daemon_serves(self, m, before):
        """After the network mount died under readers: the daemon is up,
        what it holds itself reads as before (the listing, manifest.json,
        .tpfs/stats, an info card computed earlier), and the dead mount's
        files fail with EIO (read at their ends, far from the header pages
        that mounting brought into the page cache)."""
        self.assertIsNone(m.proc.poll(), "the daemon died: " + m.stderr())
        self.assertEqual(sorted(os.listdir(m.mnt)), before["listing"])
        for rel in ("manifest.json", ".tpfs/info/f16.txt"):
            with open(m.path(rel), "rb") as f:
                self.assertEqual(f.read(), before[rel], rel)
        with open(m.path(".tpfs/stats")) as f:
            self.assertGreater(json.load(f)["errors"], 0)
        for rel in ("bf16.npy", "tokenizer.json"):
            size = os.stat(m.path(rel)).st_size
            with self.assertRaises(OSError) as cm:  # at open, or at the read
                fd = os.open(m.path(rel), os.O_RDONLY)
                try:
                    os.pread(fd, 4096, size - 4096)
                finally:
                    os.close(fd)
            self.assertEqual(cm.exception.errno, errno.EIO, rel)
        self.assertRegex(m.stderr(), r"model-0000[12]-of-00002\.safetensors "
                                     r"(could not be read|(or a folder above it )?can no longer be examined|"
                                     r"was deleted or replaced|changed while mounted)")

    def unmount(self, m):
        r = T.run_tpfs("umount", m.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(m.proc.wait(timeout=30), 0, m.stderr())
        # Mount's exit checks the status and the log for sanitizer reports

    def die_under_readers(self, kill, **sshfs_opts):
        net = self.sshfs(**sshfs_opts)
        # No block cache: each pass converts again, from the network file.
        with T.Mount(net.mnt, opts="cache_size=0") as m:
            before = {"listing": sorted(os.listdir(m.mnt))}
            for rel in ("manifest.json", ".tpfs/info/f16.txt"):
                with open(m.path(rel), "rb") as f:
                    before[rel] = f.read()
            readers = self.start_readers(m, net)
            time.sleep(0.05)  # into the next pass
            killed_at = time.monotonic()
            kill(net)
            self.check_readers_fail(readers, killed_at)
            self.check_daemon_serves(m, before)
            self.unmount(m)
        return net

    def test_every_tensor_and_file_over_sshfs_equals_its_source(self):
        net = self.sshfs()
        with T.Mount(net.mnt) as m:
            with open(m.path("manifest.json")) as f:
                manifest = json.load(f)
            self.assertEqual({t["name"] for t in manifest["tensors"]},
                             set(self.info) - {"x_blocks", "x_scales"} | {"x"})
            x = next(t for t in manifest["tensors"] if t["name"] == "x")
            self.assertEqual(x["source_dtype"], "MXFP4")
            self.assertEqual([s["file"] for s in x["sources"]], [SHARD1, SHARD2])
            n = T.check_source_tree(self, self.remote, m, manifest)
            self.assertEqual(n, len(manifest["tensors"]))
            for rel in ("config.json", "tokenizer.json", "model.safetensors.index.json"):
                with open(m.path(rel), "rb") as a, open(os.path.join(self.remote, rel), "rb") as b:
                    self.assertEqual(a.read(), b.read(), rel)
            self.assertNotIn("could not be read", m.stderr())

    def test_killing_sshfs_under_readers_gives_eio_and_the_daemon_lives(self):
        """kill -9 of sshfs: its mount stays, every request to it fails
        (transport endpoint is not connected)."""
        self.die_under_readers(lambda net: net.proc.kill())

    def test_losing_the_connection_under_readers_gives_eio(self):
        """The server's side of the connection dies (as when the server
        host goes down cleanly): sshfs sees the connection close, exits and
        detaches its mount."""
        def kill(net):
            for pid in self.server.sessions():
                os.kill(pid, signal.SIGKILL)
        net = self.die_under_readers(kill)
        self.assertEqual(net.proc.wait(timeout=30), 1, net.log_text())

    def test_a_silent_server_gives_eio_when_the_keepalive_gives_up(self):
        """The server stops answering without closing anything (stopped,
        or cut off by the network): reads wait until ssh's keepalive gives
        up (ServerAliveInterval x ServerAliveCountMax, 2 s here), then sshfs
        exits and the readers get EIO."""
        def stop(net):
            for pid in self.server.sessions():
                os.kill(pid, signal.SIGSTOP)
        self.die_under_readers(stop, alive=1, alive_count=2)

    def test_tpfs_umount_does_not_wait_for_a_hung_network_mount(self):
        """sshfs stops answering (stopped) while the daemon serves the
        kernel's readahead of a tensor served as stored, which nobody holds
        open: the daemon's thread waits on the network mount's page, but
        tpfs umount returns at once; the daemon exits (0) once the network
        mount answers again. (It used to fault in that page inside its
        reply's writev, with the request locked: the unmount then waited,
        unkillable, for as long as sshfs did not answer.)"""
        net = self.sshfs()
        with T.Mount(net.mnt) as m:
            def blocked():
                for tid in os.listdir("/proc/%d/task" % m.proc.pid):
                    try:
                        with open("/proc/%d/task/%s/stat" % (m.proc.pid, tid)) as f:
                            if f.read().rsplit(")", 1)[1].split()[0] == "D":
                                return True
                    except OSError:
                        pass
                return False
            # A first close gets FLUSH, which tpfs does not implement, and
            # the kernel sends no more: that one must not wait for a daemon
            # whose only thread (-s) will be waiting on sshfs.
            with open(m.path("config.json"), "rb"):
                pass
            net.proc.send_signal(signal.SIGSTOP)
            try:
                fd = os.open(m.path("big.npy"), os.O_RDONLY)
                os.posix_fadvise(fd, 32 << 20, 4 << 20, os.POSIX_FADV_WILLNEED)
                os.close(fd)
                deadline = time.monotonic() + 10
                while not blocked() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertTrue(blocked(), "no daemon thread waits on the stopped sshfs")
                start = time.monotonic()
                u = subprocess.Popen([T.TPFS, "umount", m.mnt])
                try:
                    u.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    net.proc.kill()  # the page fails, and the unmount ends
                    u.wait()
                    self.fail("tpfs umount waited for the hung network mount")
                self.assertEqual(u.returncode, 0)
                self.assertLess(time.monotonic() - start, 15)
            finally:
                net.proc.send_signal(signal.SIGCONT)
            self.assertEqual(m.proc.wait(timeout=30), 0, m.stderr())

    def test_stopping_the_sshd_listener_leaves_the_mount_working(self):
        """Killing sshd's listener (as restarting the ssh service does)
        leaves established connections, and so the mounts, as they were."""
        net = self.sshfs()
        self.server.sessions()
        self.server.proc.kill()
        self.server.proc.wait()
        with T.Mount(net.mnt) as m:
            with open(m.path("manifest.json")) as f:
                manifest = json.load(f)
            T.check_source_tree(self, self.remote, m, manifest)

    def test_with_reconnect_a_remount_of_tpfs_serves_again(self):
        """sshfs -o reconnect survives a lost connection, but files opened
        before it fail with EIO for good, tpfs's sources too: tpfs umount
        and mount again, on the same sshfs mount, serves the model again."""
        def kill(net):
            for pid in self.server.sessions():
                os.kill(pid, signal.SIGKILL)
        net = self.die_under_readers(kill, extra=",reconnect")
        self.assertIsNone(net.proc.poll(), net.log_text())
        with T.Mount(net.mnt) as m:
            for name in ("big", "x", "bf16"):
                self.assertTrue(T.same_bits(np.load(m.path(name + ".npy")),
                                            self.expected(name)), name)


if __name__ == "__main__":
    T.main()
