"""A mount shared with allow_other lets no user read more than they could
read from the source directly.

The tests build source trees as root with every kind of entry (modes 0,
0200, 0600, 0700 and search-only folders, other owners and groups, POSIX
ACLs, links within and out of the source, a Hugging Face cache snapshot),
mount them with allow_other, and then let unprivileged users (setpriv) try
everything themselves, once through the mount and once on the source. What
a user managed through the mount must be something they managed directly:
reading a file's bytes, listing a folder, or learning a name; a tensor's
name, bytes, card and manifest entry come from its file's header, so they
need that file read directly. None of this looks at tpfs's own rule.
"""

import errno
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import tpfstest as T

OTHER = (65534, 65534, [])         # nobody, no groups
GROUP = (65534, 65534, [4242])     # nobody in the models group
OWNER = (4243, 4243, [])           # the owner of some files
# An ACL (acl_xattr's entries) giving OTHER's user all, its mask all
GRANT_ALL = [(1, 7, -1), (2, 7, OTHER[0]), (4, 5, -1), (0x10, 7, -1), (0x20, 5, -1)]

# What a reader does, on its own: for each path, whether stat, reading
# (a file's bytes, to the end) and listing (a folder) work, and the names
# each listing showed.
PROBE = r"""
import json, os, sys
out = {}
for p in json.load(sys.stdin):
    r = {"stat": False, "read": False, "list": None}
    try:
        st = os.stat(p)
        r["stat"] = True
    except OSError:
        st = None
    if st is not None and os.path.isdir(p):
        try:
            r["list"] = sorted(os.listdir(p))
        except OSError:
            pass
    elif st is not None:
        try:
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass
            r["read"] = True
        except OSError:
            pass
    out[p] = r
json.dump(out, sys.stdout)
"""


def probe(who, paths):
    uid, gid, groups = who
    ids = ["--reuid=%d" % uid, "--regid=%d" % gid]
    ids += ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    r = subprocess.run(["setpriv", *ids, "/usr/bin/python3", "-c", PROBE],
                       input=json.dumps(paths), capture_output=True, text=True,
                       cwd="/", timeout=120)
    if r.returncode != 0:
        raise AssertionError("probe as %s failed: %s" % (who, r.stderr))
    return json.loads(r.stdout)


def acl_xattr(entries):
    """A system.posix_acl_access value: version 2, then (tag, perm, id)
    entries in tag order (1 owner, 2 named user, 4 group, 0x10 mask,
    0x20 other; -1 as the id of all but named ones)."""
    data = struct.pack("<I", 2)
    for tag, perm, ident in entries:
        data += struct.pack("<HHI", tag, perm, ident & 0xFFFFFFFF)
    return data


def deny_nobody(path, owner, group, other):
    """An ACL that gives uid 65534 nothing and everyone else the bits."""
    os.setxattr(path, "system.posix_acl_access", acl_xattr(
        [(1, owner, -1), (2, 0, 65534), (4, group, -1), (0x10, group, -1),
         (0x20, other, -1)]))


def shard(path, tensors, mode=0o644, owner=None):
    """A .safetensors file of (name, dtype, shape) with random data."""
    rng = np.random.default_rng(abs(hash(path)) % (1 << 32))
    spec = []
    for name, dt, shape in tensors:
        n = int(np.prod(shape)) * T.BITS[dt] // 8
        spec.append((name, dt, shape, rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
    T.write_safetensors(path, spec)
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)


def text(path, mode=0o644, owner=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("{\"file\": %s}\n" % json.dumps(os.path.basename(path)))
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)


def folder(path, mode=0o755, owner=None):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)


class Layout:
    """A source tree and, for every entry the mount shows, what reading
    it needs directly: ("file", rel) a passed-through file, ("dir", rel) a
    folder, ("tensor", [shard rels]) a tensor or its card."""

    def __init__(self, base, src):
        self.base = base
        self.src = src
        self.shards = {}        # shard rel -> tensor names

    def add_shard(self, rel, tensors, **kw):
        shard(os.path.join(self.src, rel), tensors, **kw)
        self.shards[rel] = [t[0] for t in tensors]

    def need(self, manifest, rel):
        """What the mount entry rel (relative to the mount) needs."""
        if rel in ("manifest.json", ".tpfs-convert"):   # convert's journal too
            return ("manifest", None)
        if rel in (".tpfs", ".tpfs/info", ".tpfs/stats"):
            return ("dir", "")
        by_path = {t["path"]: t for t in manifest["tensors"]}
        tensor_path = rel
        if rel.startswith(".tpfs/info/"):
            tensor_path = rel[len(".tpfs/info/"):]
            if tensor_path.endswith(".txt"):
                tensor_path = tensor_path[:-4] + ".npy"
        if tensor_path in by_path:
            t = by_path[tensor_path]
            files = [s["file"] for s in t["sources"]] if "sources" in t else [t["source_file"]]
            return ("tensor", files)
        if rel.startswith(".tpfs/info/"):   # a mirror of a folder
            return self.need(manifest, tensor_path)
        if os.path.isdir(os.path.join(self.src, rel)):
            return ("dir", rel)
        if os.path.lexists(os.path.join(self.src, rel)):
            return ("file", rel)
        # a folder made by tensor names: what is below it
        files = sorted({f for p, t in by_path.items() if p.startswith(rel + "/")
                        for f in ([s["file"] for s in t["sources"]] if "sources" in t
                                  else [t["source_file"]])})
        return ("tensor", files)


def mount_entries(mnt):
    """Every path the mount shows, walked as root."""
    out = []
    for dirpath, dirs, files in os.walk(mnt):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(dirpath, n), mnt))
    return sorted(out)


def source_entries(layout):
    out = [""]
    for dirpath, dirs, files in os.walk(layout.src, followlinks=True):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(dirpath, n), layout.src))
    return sorted(out)


class SharedMount(T.FuseCase):
    """Compare, entry by entry and user by user, the mount with the source."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            if os.environ.get("TPFS_REQUIRE_FUSE") == "1":
                self.fail("these tests make files of other users: run them as root")
            self.skipTest("needs root (files of other users, setpriv)")
        tmp = tempfile.mkdtemp(prefix="tpfs-access-")
        self.addCleanup(subprocess.run, ["rm", "-rf", tmp])
        os.chmod(tmp, 0o755)
        self.base = tmp

    def check(self, layout, opts="allow_other", readers=(OTHER, GROUP, OWNER),
              expect=()):
        """Mount layout.src and compare. expect: (reader, mount rel, what)
        that must work through the mount, so that a mount that lets nobody
        in cannot pass."""
        with T.Mount(layout.src, opts=opts) as m:
            self.check_served(layout, m.mnt, readers, expect)
            return m.stderr()

    def check_converted(self, layout, readers=(OTHER, GROUP, OWNER), extra=(),
                        premade=False):
        """tpfs convert (as root) writes no file or folder that a user may
        read or list but could not directly (into a new OUT, or one made
        open to reading beforehand)."""
        out = os.path.join(self.base, "out")
        if premade:
            folder(out, 0o755)
        r = T.run_tpfs("convert", layout.src, out, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_served(layout, out, readers, ())
        shutil.rmtree(out)

    def check_served(self, layout, root, readers, expect):
        """Compare what each reader may do under root (a mount, or a
        converted folder) with what they may do on the source."""
        class Served:
            mnt = root

            @staticmethod
            def path(rel):
                return os.path.join(root, rel)
        m = Served
        with open(m.path("manifest.json")) as f:
            manifest = json.load(f)
        entries = mount_entries(m.mnt)
        self.assertIn("manifest.json", entries)
        src_entries = source_entries(layout)
        for who in readers:
            through = probe(who, [m.mnt] + [m.path(e) for e in entries])
            direct = probe(who, [os.path.join(layout.src, e) if e else layout.src
                                 for e in src_entries])
            self.compare(layout, manifest, m, who, entries, through, direct)
            for w, rel, what in expect:
                if w == who:
                    got = through[m.path(rel) if rel else m.mnt]
                    ok = got["read"] if what == "read" else got["list"] is not None
                    self.assertTrue(ok, "%s cannot %s %s through the mount" %
                                    (who, what, rel))

    def compare(self, layout, manifest, m, who, entries, through, direct):
        def d(rel):
            return direct[os.path.join(layout.src, rel) if rel else layout.src]

        def read_direct(rel):
            return d(rel)["read"]

        def list_direct(rel):
            return d(rel)["list"] is not None

        # names shown by listing a folder of the mount
        listed = set()
        for e in [""] + entries:
            r = through[m.path(e) if e else m.mnt]
            for n in r["list"] or []:
                listed.add(os.path.join(e, n) if e else n)
        for rel in entries:
            r = through[m.path(rel)]
            got_bytes = r["read"] or r["list"] is not None
            got_name = r["stat"] or rel in listed
            kind, what = layout.need(manifest, rel)
            why = "%s: %s through the mount" % (who, rel)
            if kind == "tensor":
                ok = all(read_direct(f) for f in what)
                self.assertTrue(ok or not got_bytes, why + " is readable, but not "
                                "every file it comes from (%s) directly" % what)
                self.assertTrue(ok or not got_name, why + " shows a name from %s, "
                                "which the user cannot read directly" % what)
            elif kind == "manifest":
                ok = all(read_direct(s) for s in layout.shards) and all(
                    list_direct(os.path.dirname(t["path"])) for t in manifest["tensors"]
                    if os.path.isdir(os.path.join(layout.src, os.path.dirname(t["path"]))))
                self.assertTrue(ok or not got_bytes, why + " is readable, but not "
                                "everything it describes directly")
            elif kind == "dir":
                self.assertTrue(list_direct(what) or r["list"] is None,
                                why + " can be listed, but not %r directly" % what)
                self.assertTrue(d(what)["stat"] or not got_name,
                                why + " can be found, but not %r directly" % what)
            else:
                self.assertTrue(read_direct(what) or not r["read"],
                                why + " can be read, but not directly")
                self.assertTrue(d(what)["stat"] or not r["stat"],
                                why + " can be found, but not directly")
                parent = os.path.dirname(what)
                self.assertTrue(list_direct(parent) or rel not in listed,
                                why + " is listed, but %r cannot be listed directly"
                                % parent)

    def test_every_kind_of_entry(self):
        b = self.base
        src = os.path.join(b, "src")
        L = Layout(b, src)
        folder(src)
        L.add_shard("model-00001-of-00002.safetensors",
                    [("w", "F32", (4, 4)), ("layers.0.x_blocks", "U8", (2, 1, 16)),
                     ("enc/deep/k", "BF16", (3,))])
        L.add_shard("model-00002-of-00002.safetensors",
                    [("layers.0.x_scales", "U8", (2, 1)), ("b", "BF16", (8,))])
        text(os.path.join(src, "config.json"))
        text(os.path.join(src, "zero.json"), 0)
        text(os.path.join(src, "wo.json"), 0o200)
        text(os.path.join(src, "secret.json"), 0o600)
        text(os.path.join(src, "theirs.json"), 0o600, owner=(4243, 4243))
        text(os.path.join(src, "grp.json"), 0o640, owner=(0, 4242))
        # folders closed in each way, with files and tensors inside
        for name, mode, owner in [("priv", 0o700, None), ("zero", 0, None),
                                  ("wdir", 0o200, None), ("xonly", 0o711, None),
                                  ("ronly", 0o744, None),
                                  ("gdir", 0o750, (0, 4242)),
                                  ("odir", 0o700, (4243, 4243))]:
            folder(os.path.join(src, name))
            text(os.path.join(src, name, "f.json"))
            L.add_shard(name + "/model.safetensors", [(name + "_t", "F16", (2,))])
            os.chmod(os.path.join(src, name), mode)
            if owner:
                os.chown(os.path.join(src, name), *owner)
        # a file of another user, private to them, in a folder of theirs
        L.add_shard("odir/own.safetensors", [("own_t", "U8", (3,))], mode=0o600,
                    owner=(4243, 4243))
        # one private shard among public ones: its names must not show
        folder(os.path.join(src, "mixed"))
        L.add_shard("mixed/pub.safetensors", [("p", "U8", (2,))])
        L.add_shard("mixed/sec.safetensors", [("s", "U8", (2,))], mode=0o600)
        L.add_shard("mixed/other.safetensors", [("o", "U8", (2,))], mode=0o600,
                    owner=(4243, 4243))
        text(os.path.join(src, "mixed", "notes.txt"))
        # links: within, out to open and closed places, to a folder within
        # (skipped: priv is shown at its own place)
        folder(os.path.join(b, "outside"))
        text(os.path.join(b, "outside", "pub.json"))
        text(os.path.join(b, "outside", "secret.json"), 0o600)
        folder(os.path.join(b, "locked"), 0o700)
        text(os.path.join(b, "locked", "in.json"))
        shard(os.path.join(b, "locked", "blob"), [("hidden", "U8", (4,))])
        os.symlink("config.json", os.path.join(src, "link.json"))
        os.symlink("../outside/pub.json", os.path.join(src, "out_pub.json"))
        os.symlink("../outside/secret.json", os.path.join(src, "out_secret.json"))
        os.symlink("priv", os.path.join(src, "lpriv"))
        # links into a folder others may not enter: a file, a shard, a folder
        folder(os.path.join(src, "bad"))
        folder(os.path.join(b, "locked", "sub"))
        os.symlink("../../locked/in.json", os.path.join(src, "bad", "in.json"))
        os.symlink("../../locked/blob", os.path.join(src, "bad", "model.safetensors"))
        L.shards["bad/model.safetensors"] = ["hidden"]
        text(os.path.join(b, "locked", "sub", "f.json"))
        os.symlink("../../locked/sub", os.path.join(src, "bad", "sub"))
        # POSIX ACLs that deny uid 65534 what the mode bits would give
        text(os.path.join(src, "acl.json"))
        folder(os.path.join(src, "acldir"))
        text(os.path.join(src, "acldir", "f.json"))
        try:
            deny_nobody(os.path.join(src, "acl.json"), 6, 4, 4)
            deny_nobody(os.path.join(src, "acldir"), 7, 5, 5)
        except OSError as e:
            print("no POSIX ACLs on this filesystem (%s): the ACL entries are "
                  "plain files" % e)
        log = self.check(L, expect=[
            (OTHER, "w.npy", "read"), (OTHER, "layers.0.x.npy", "read"),
            (OTHER, "enc/deep/k.npy", "read"), (OTHER, ".tpfs/info/w.txt", "read"),
            (OTHER, "config.json", "read"), (OTHER, "link.json", "read"),
            (OTHER, "out_pub.json", "read"), (OTHER, "xonly/f.json", "read"),
            (OTHER, "xonly/xonly_t.npy", "read"), (OTHER, "", "list"),
            (GROUP, "grp.json", "read"), (GROUP, "gdir/f.json", "read"),
            (GROUP, "gdir/gdir_t.npy", "read"), (GROUP, "gdir", "list"),
            (OWNER, "theirs.json", "read"), (OWNER, "odir/own_t.npy", "read"),
            (OWNER, "odir/f.json", "read"),
        ])
        # the log says what closed a folder, and to whom it is served
        self.assertRegex(log, r"mixed/(sec|other)\.safetensors is readable by fewer users than "
                              r"may list the folder that shows its tensors .*: the "
                              r"folder mixed is served only to them")
        self.assertRegex(log, r"bad/in\.json leads into a folder that fewer users may "
                              r"enter than the one that shows it: the folder bad is "
                              r"served only to them")
        self.check_converted(L)
        self.check_converted(L, readers=(OTHER, GROUP), extra=("--shard-size", "1K"))
        self.check_converted(L, readers=(OTHER,), premade=True)

    def test_a_closed_folder_above_the_source_closes_the_mount(self):
        b = self.base
        folder(os.path.join(b, "closed"), 0o700)
        src = os.path.join(b, "closed", "model")
        L = Layout(b, src)
        folder(src)
        L.add_shard("model.safetensors", [("w", "F32", (2, 2))])
        text(os.path.join(src, "config.json"))
        log = self.check(L)
        self.assertIn("a folder above %s lets fewer users through than it does" % src, log)
        # said only of a mount that lets others in
        with T.Mount(src) as m:
            self.assertNotIn("lets fewer users through", m.stderr())
        self.check_converted(L, premade=True)

    def test_a_fully_open_model_is_open_to_all(self):
        b = self.base
        src = os.path.join(b, "open")
        L = Layout(b, src)
        folder(src)
        L.add_shard("model-00001-of-00002.safetensors", [("a", "BF16", (4,))])
        L.add_shard("model-00002-of-00002.safetensors", [("sub/b", "F32", (2,))])
        text(os.path.join(src, "config.json"))
        self.check(L, readers=(OTHER,), expect=[
            (OTHER, "manifest.json", "read"), (OTHER, "a.npy", "read"),
            (OTHER, "sub/b.npy", "read"), (OTHER, ".tpfs/info/sub/b.txt", "read"),
            (OTHER, ".tpfs/stats", "read")])
        # converted, it stays open: modes as the mount's, within the umask
        out = os.path.join(b, "out")
        r = T.run_tpfs("convert", src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = probe(OTHER, [os.path.join(out, p) for p in
                            ("manifest.json", "a.npy", "sub/b.npy", "config.json")])
        self.assertTrue(all(v["read"] for v in got.values()), got)

    def test_a_file_without_tensors_in_a_closed_folder_closes_the_manifest(self):
        """manifest.json names every .safetensors file and its metadata, one
        without tensors too: who cannot reach it directly does not read
        the manifest, and still reads the open tensors."""
        b = self.base
        src = os.path.join(b, "model")
        L = Layout(b, src)
        folder(src)
        L.add_shard("model.safetensors", [("a", "F32", (2,))])
        folder(os.path.join(src, "closed"))
        L.add_shard("closed/empty.safetensors", [])
        os.chmod(os.path.join(src, "closed"), 0o700)
        self.check(L, readers=(OTHER,), expect=[(OTHER, "a.npy", "read")])
        with T.Mount(src, opts="allow_other") as m:
            got = probe(OTHER, [m.path("manifest.json")])
            self.assertFalse(got[m.path("manifest.json")]["read"])
        # converted, its manifest.json and journal stay as closed
        out = os.path.join(b, "out")
        r = T.run_tpfs("convert", src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        lists = [os.path.join(out, n) for n in ("manifest.json", ".tpfs-convert")]
        got = probe(OTHER, lists + [os.path.join(out, "a.npy")])
        self.assertTrue(got[os.path.join(out, "a.npy")]["read"], got)
        self.assertFalse(any(got[p]["read"] for p in lists), got)

    def test_statfs_tells_totals_only_to_who_may_read_it_all(self):
        """df needs no permission on the mount's root; its counts (entries,
        bytes) are of the whole model, so others get zeros."""
        b = self.base
        src = os.path.join(b, "model")
        folder(src)
        shard(os.path.join(src, "model.safetensors"), [("a", "F32", (64, 64))])
        os.chown(src, 4243, 4243)
        os.chmod(src, 0o700)
        df = "import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_files, s.f_blocks)"
        with T.Mount(src, opts="allow_other") as m:
            got = {}
            for who in (OTHER, OWNER):
                uid, gid, _ = who
                r = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                                    "--clear-groups", "/usr/bin/python3", "-c", df, m.mnt],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                got[uid] = tuple(int(x) for x in r.stdout.split())
        self.assertEqual(got[OTHER[0]], (0, 0))
        files, blocks = got[OWNER[0]]
        self.assertGreaterEqual(files, 4)  # root, a.npy, manifest.json, .tpfs...
        self.assertGreaterEqual(blocks * 4096, 64 * 64 * 4)

    def test_a_source_on_a_fuse_mount_without_allow_other_stays_its_users(self):
        """FUSE lets only the user who mounted it into a mount without
        allow_other, whatever the bits say: served on, its files are that
        user's alone. Here the source is itself a tpfs mount of an open
        model (as a private sshfs mount would be)."""
        b = self.base
        src = os.path.join(b, "model")
        folder(src)
        shard(os.path.join(src, "model.safetensors"), [("w", "F32", (8,)),
                                                        ("sub/v", "U8", (4,))])
        text(os.path.join(src, "config.json"))
        for inner_opts, open_to_all in ((None, False), ("allow_other", True)):
            with self.subTest(inner=inner_opts), T.Mount(src, opts=inner_opts) as inner:
                paths = [inner.path(p) for p in ("w.npy", "sub/v.npy", "config.json")]
                direct = probe(OTHER, [inner.mnt] + paths)
                self.assertEqual(all(direct[p]["read"] for p in paths), open_to_all, direct)
                with T.Mount(inner.mnt, opts="allow_other") as outer:
                    entries = mount_entries(outer.mnt)
                    self.assertIn("w.npy", entries)
                    self.assertIn("config.json", entries)
                    through = probe(OTHER, [outer.mnt] + [outer.path(e) for e in entries])
                    for rel in [""] + entries:
                        got = through[outer.path(rel) if rel else outer.mnt]
                        if not open_to_all:
                            self.assertFalse(got["read"] or got["list"], (rel, got))
                    if open_to_all:
                        self.assertTrue(through[outer.path("w.npy")]["read"], through)
                    # the user who mounted it still reads
                    with open(outer.path("config.json")) as f:
                        self.assertIn("config.json", f.read())

    def test_what_a_private_folder_holds_shows_in_no_size_count_or_number(self):
        """Others see the same sizes, link counts, inode numbers and df
        figures whether a private folder holds three tensors or six, and
        cannot read .tpfs/stats (it counts reads of private tensors)."""
        seen = []
        look = ("import json, os, sys\n"
                "m = sys.argv[1]; out = {}\n"
                "s = os.statvfs(m); out['df'] = [s.f_blocks, s.f_files]\n"
                "for rel in ('manifest.json', 'sub', 'w.npy', '.tpfs/info/w.txt',\n"
                "            '.tpfs/stats', '.tpfs/info'):\n"
                "    st = os.stat(os.path.join(m, rel))\n"
                "    out[rel] = [st.st_size, st.st_nlink, st.st_ino]\n"
                "try:\n"
                "    open(os.path.join(m, '.tpfs/stats')).read(); out['stats'] = True\n"
                "except PermissionError:\n"
                "    out['stats'] = False\n"
                "print(json.dumps(out))\n")
        for n in (3, 6):
            src = os.path.join(self.base, "model%d" % n)
            folder(src)
            shard(os.path.join(src, "model.safetensors"), [("w", "F32", (4,))])
            folder(os.path.join(src, "sub"), 0o700, OWNER[:2])
            shard(os.path.join(src, "sub", "model.safetensors"),
                  [("p%d/deep/t" % i, "F32", (100 * (i + 1),)) for i in range(n)],
                  mode=0o600, owner=OWNER[:2])
            with T.Mount(src, opts="allow_other,dtype=f16") as m:
                r = subprocess.run(["setpriv", "--reuid=%d" % OWNER[0],
                                    "--regid=%d" % OWNER[1], "--clear-groups",
                                    "/usr/bin/python3", "-c",
                                    "import numpy, sys; numpy.load(sys.argv[1])",
                                    m.path("sub/p0/deep/t.npy")], capture_output=True,
                                   text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)  # the owner reads
                r = subprocess.run(["setpriv", "--reuid=%d" % OTHER[0],
                                    "--regid=%d" % OTHER[1], "--clear-groups",
                                    "/usr/bin/python3", "-c", look, m.mnt],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                seen.append(json.loads(r.stdout))
                # root, who may read it all, reads it all (the manifest to
                # its end, though it shows 0 bytes) and gets df's figures
                with open(m.path("manifest.json")) as f:
                    names = {t["name"] for t in json.load(f)["tensors"]}
                self.assertEqual(len(names), n + 1)
                self.assertGreater(os.statvfs(m.mnt).f_files, 0)
        self.assertFalse(seen[0]["stats"])
        self.assertEqual(seen[0], seen[1])

    def test_hugging_face_snapshots_work_and_follow_the_blob_store(self):
        b = self.base
        for closed in (False, True):
            with self.subTest(closed_blobs=closed):
                repo = os.path.join(b, "hub%d" % closed, "models--t")
                blobs = os.path.join(repo, "blobs")
                src = os.path.join(repo, "snapshots", "rev")
                folder(blobs)
                folder(src)
                shard(os.path.join(blobs, "4f1c"), [("w", "BF16", (4, 4))])
                text(os.path.join(blobs, "9e0a"))
                os.symlink("../../blobs/4f1c", os.path.join(src, "model.safetensors"))
                os.symlink("../../blobs/9e0a", os.path.join(src, "config.json"))
                L = Layout(b, src)
                L.shards["model.safetensors"] = ["w"]
                if closed:
                    os.chmod(blobs, 0o700)
                self.check(L, readers=(OTHER,), expect=[] if closed else [
                    (OTHER, "w.npy", "read"), (OTHER, "config.json", "read"),
                    (OTHER, "manifest.json", "read")])

    def test_a_private_single_file(self):
        b = self.base
        path = os.path.join(b, "one.safetensors")
        shard(path, [("w", "U8", (4,))], mode=0o600, owner=(4243, 4243))

        class One(Layout):
            def need(self, manifest, rel):
                if rel in ("manifest.json",) or rel.startswith(".tpfs") \
                        or rel.endswith(".npy"):
                    return ("tensor", [""])
                raise AssertionError(rel)

        L = One(b, path)
        L.shards[""] = ["w"]
        self.check(L, readers=(OTHER, OWNER), expect=[(OWNER, "w.npy", "read")])

    def test_permissions_narrowed_after_mounting_stop_reads(self):
        """A file or a folder above it made private while mounted: opening
        it through the mount fails (EIO), as reading it directly would, and
        so do manifest.json and .tpfs/stats, which only who may read every
        entry reads."""
        b = self.base
        src = os.path.join(b, "live")
        folder(src)
        folder(os.path.join(src, "sub"))
        shard(os.path.join(src, "sub", "model.safetensors"), [("w", "U8", (4,))])
        text(os.path.join(src, "config.json"))
        with T.Mount(src, opts="allow_other") as m:
            paths = [m.path("sub/w.npy"), m.path("config.json"),
                     m.path("manifest.json"), m.path(".tpfs/stats")]
            self.assertTrue(all(r["read"] for r in probe(OTHER, paths).values()))
            os.chmod(os.path.join(src, "config.json"), 0o600)
            os.chmod(os.path.join(src, "sub"), 0o700)
            got = probe(OTHER, paths)
            self.assertFalse(any(r["read"] for r in got.values()), got)
            self.assertIn("config.json changed owner, group or mode", m.stderr())
            self.assertIn("or a folder above it changed", m.stderr())


class UnreadableByTpfs(unittest.TestCase):
    def test_what_tpfs_may_not_read_is_skipped_unless_it_is_a_shard(self):
        """Run as a user who may not read some entries, tpfs leaves out a
        file or folder with a warning, and refuses a model with a shard it
        may not read, naming it."""
        if os.geteuid() != 0:
            self.skipTest("needs root (setpriv)")
        tmp = tempfile.mkdtemp(prefix="tpfs-access-")
        self.addCleanup(subprocess.run, ["rm", "-rf", tmp])
        os.chmod(tmp, 0o755)
        src = os.path.join(tmp, "src")
        folder(src)
        shard(os.path.join(src, "model.safetensors"), [("w", "U8", (4,))])
        text(os.path.join(src, "closed.json"), 0o600)
        folder(os.path.join(src, "closed"), 0o700)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               T.TPFS, "ls", src]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("w", r.stdout)
        self.assertRegex(r.stderr, r"skipping .*closed\.json: Permission denied")
        self.assertRegex(r.stderr, r"skipping .*closed: Permission denied")
        shard(os.path.join(src, "model-2.safetensors"), [("v", "U8", (4,))], mode=0o600)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertRegex(r.stderr, r"model-2\.safetensors: cannot open: Permission denied")


class ConvertAsRoot(unittest.TestCase):
    """tpfs convert run by root, into an OUT that others may have had a
    hand in, from a model with private files."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (files of other users, setpriv)")
        self.base = tempfile.mkdtemp(prefix="tpfs-access-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.base])
        os.chmod(self.base, 0o755)
        self.src = os.path.join(self.base, "src")
        self.make_src()

    def set_acl(self, path, kind, entries):
        """Give path an ACL ("access" or "default"), or skip the test where
        its filesystem has none."""
        try:
            os.setxattr(path, "system.posix_acl_" + kind, acl_xattr(entries))
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise
            self.skipTest("no POSIX ACLs on this filesystem")

    def make_src(self, make=lambda: None):
        """A public model, with what make adds."""
        folder(self.src)
        shard(os.path.join(self.src, "model.safetensors"), [("w", "U8", (4,))])
        text(os.path.join(self.src, "config.json"))
        make()

    def test_an_out_others_may_change_is_refused(self):
        rule = "must be owned by the user running convert and not writable by group or others"
        for name, mode, owner in [("open", 0o777, None), ("group", 0o775, None),
                                  ("sticky", 0o1777, None), ("theirs", 0o755, OTHER[:2])]:
            with self.subTest(name):
                out = os.path.join(self.base, name)
                folder(out, mode, owner)
                r = T.run_tpfs("convert", self.src, out)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("tpfs convert: %s: " % out, r.stderr)
                self.assertIn(rule, r.stderr)
                self.assertEqual(os.listdir(out), [])
        # a folder of an earlier output that another user may now change
        text(os.path.join(self.src, "sub", "notes.txt"))
        out = os.path.join(self.base, "out")
        r = T.run_tpfs("convert", self.src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        sub = os.path.join(out, "sub")
        for mode, owner in [(0o775, None), (0o755, OTHER[:2])]:
            with self.subTest(mode=mode, owner=owner):
                folder(sub, mode, owner)
                r = T.run_tpfs("convert", self.src, out)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("tpfs convert: %s: " % sub, r.stderr)
                self.assertIn(rule, r.stderr)
                folder(sub, 0o755, (0, 0))
        # an ACL that lets a user write (its mask is the group bits)
        out = os.path.join(self.base, "acl")
        folder(out)
        self.set_acl(out, "access", GRANT_ALL)
        r = T.run_tpfs("convert", self.src, out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tpfs convert: %s: writable by group or others, or by users or "
                      "groups its ACL names: " % out, r.stderr)
        self.assertIn(rule, r.stderr)
        self.assertEqual(os.listdir(out), [])

    def test_an_out_that_is_a_symbolic_link_is_refused(self):
        """Whoever owns the folder OUT is in may make OUT a link to a folder
        of root's: convert refuses it, in one line naming OUT and the rule,
        and changes nothing where it leads (no file written or removed, no
        mode narrowed)."""
        bob = os.path.join(self.base, "bob")
        folder(bob, 0o755, OTHER[:2])
        out = os.path.join(bob, "out")
        earlier = os.path.join(self.base, "earlier")
        r = T.run_tpfs("convert", self.src, earlier)
        self.assertEqual(r.returncode, 0, r.stderr)
        empty = os.path.join(self.base, "empty")
        folder(empty, 0o755)
        other = os.path.join(self.base, "other")   # another model
        folder(other)
        shard(os.path.join(other, "model.safetensors"), [("v", "U8", (4,))])

        def state(path):
            if not os.path.lexists(path):
                return None
            names = sorted(os.listdir(path))
            return (os.stat(path).st_mode, names,
                    [open(os.path.join(path, n), "rb").read() for n in names])
        for target in (earlier, empty, os.path.join(self.base, "missing")):
            with self.subTest(os.path.basename(target)):
                before = state(target)
                os.symlink(target, out)
                os.lchown(out, *OTHER[:2])
                try:
                    r = T.run_tpfs("convert", other, out)
                finally:
                    os.unlink(out)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertIn("tpfs convert: %s: a symbolic link: " % out, r.stderr)
                self.assertIn("none may be a symbolic link", r.stderr)
                self.assertEqual(state(target), before)

    def test_an_acl_gives_no_one_more_than_the_source(self):
        """A default ACL letting uid 65534 in, on the folder OUT is made in
        or on OUT itself, or an ACL on OUT or on a file an earlier run
        wrote, would let them read what they cannot read in the source:
        nothing convert makes or keeps has an ACL, and an OUT that had one
        is kept to its owner."""
        def private():
            for name in ("model.safetensors", "config.json"):
                os.chmod(os.path.join(self.src, name), 0o640)
            text(os.path.join(self.src, "sub", "notes.json"), 0o640)
        shutil.rmtree(self.src)
        self.make_src(private)
        sources = [os.path.join(self.src, n)
                   for n in ("model.safetensors", "config.json", "sub/notes.json")]
        self.assertFalse(any(r["read"] for r in probe(OTHER, sources).values()))

        def check(top, out):
            paths = [top] + [os.path.join(d, n) for d, ds, fs in os.walk(top)
                             for n in ds + fs]
            got = probe(OTHER, paths)
            self.assertFalse([p for p, r in got.items() if r["read"]], got)
            self.assertIsNone(got[out]["list"], got[out])
            for path in paths:
                for kind in ("access", "default"):
                    self.assertNotIn("system.posix_acl_" + kind, os.listxattr(path), path)
        parent = os.path.join(self.base, "parent")
        folder(parent)
        self.set_acl(parent, "default", GRANT_ALL)
        for top, out in (("out", "out"), ("new", "new/out")):  # a folder above OUT too
            top, out = os.path.join(parent, top), os.path.join(parent, out)
            r = T.run_tpfs("convert", self.src, out)
            self.assertEqual(r.returncode, 0, r.stderr)
            check(top, out)
        out = os.path.join(self.base, "out")
        folder(out)
        self.set_acl(out, "access", [(1, 7, -1), (2, 5, OTHER[0]), (4, 5, -1),
                                     (0x10, 5, -1), (0x20, 5, -1)])
        self.set_acl(out, "default", GRANT_ALL)
        r = T.run_tpfs("convert", self.src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        check(out, out)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o700)
        # a file an earlier run wrote, given an ACL since, is kept without
        self.set_acl(os.path.join(out, "w.npy"), "access", [
            (1, 6, -1), (2, 4, OTHER[0]), (4, 4, -1), (0x10, 4, -1), (0x20, 0, -1)])
        r = T.run_tpfs("convert", self.src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all 3 files already converted, kept", r.stdout)
        check(out, out)

    def test_the_list_is_as_private_as_every_file_it_names(self):
        """manifest.json and the journal name every file written, with its
        size and checksum: only who may read every one of those files, and
        list every folder they are in, may read them, even once OUT is
        opened up."""
        cases = {"a private file": lambda: text(os.path.join(self.src, "secret.json"), 0o600),
                 "a private folder": lambda: (folder(os.path.join(self.src, "priv"), 0o700),
                                              text(os.path.join(self.src, "priv", "f.json")))}
        for case, make in cases.items():
            with self.subTest(case):
                shutil.rmtree(self.src)
                self.make_src(make)
                out = os.path.join(self.base, "out-" + case.replace(" ", "-"))
                r = T.run_tpfs("convert", self.src, out)
                self.assertEqual(r.returncode, 0, r.stderr)
                os.chmod(out, 0o755)
                lists = [os.path.join(out, n) for n in ("manifest.json", ".tpfs-convert")]
                for path in lists:
                    self.assertEqual(os.stat(path).st_mode & 0o077, 0, path)
                got = probe(OTHER, lists + [os.path.join(out, "config.json")])
                self.assertTrue(got[os.path.join(out, "config.json")]["read"], got)
                self.assertFalse(any(got[p]["read"] for p in lists), got)


if __name__ == "__main__":
    T.main()
