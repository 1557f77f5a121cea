"""The bash completion (tools/completion/tpfs), sourced in bash after
bash-completion, as bash calls it: COMP_WORDS split as bash splits a line
(on blanks, and around '=' and ':', which are word breaks), the function
that `complete -p tpfs` names called for the last word. The expectations
come from the documented command line (README, tpfs(1)); the options
offered to mount are also checked against `tpfs mount --help`.

Environment: TPFS_BIN, the tpfs executable (for its --help).
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import tpfstest as T

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPLETION = os.path.join(REPO, "tools", "completion", "tpfs")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

CONVERSION = ["cache_size=", "block_size=", "by_file", "bf16=", "fp8=", "mxfp4=",
              "dtype="]
MOUNT_ONLY = ["direct_io", "allow_other", "allow_root", "auto_unmount", "nodev", "nosuid",
              "noexec", "dev", "suid", "exec", "atime", "noatime", "sync", "async",
              "dirsync"]

# Runs the completion of "$@" (COMP_WORDS) and prints COMPREPLY, a line each.
SCRIPT = r"""
source "$BASH_COMPLETION" && source "$COMPLETION" || exit 3
func=$(complete -p tpfs | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$func" ] || exit 4
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$LINE
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$func" tpfs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def comp_words(line):
    """COMP_WORDS for line typed up to its end: blanks separate words, and
    each run of '=' or ':' is a word of its own (bash's COMP_WORDBREAKS)."""
    words = [p for w in line.split() for p in re.findall(r"[^=:]+|[=:]+", w)]
    return words + [""] if line.endswith(" ") else words


class Completion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tpfs-completion-")
        for d in ("model", "mnt"):
            os.mkdir(os.path.join(cls.tmp, d))
        for f in ("m.safetensors", "notes.txt"):
            open(os.path.join(cls.tmp, f), "w").close()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def setUp(self):
        if not os.path.exists(BASH_COMPLETION):
            self.fail("%s is missing: install bash-completion (tools/deps.sh --test)"
                      % BASH_COMPLETION)

    def complete(self, line):
        env = dict(os.environ, BASH_COMPLETION=BASH_COMPLETION, COMPLETION=COMPLETION,
                   LINE=line)
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", SCRIPT, "bash",
                            *comp_words(line)],
                           capture_output=True, text=True, cwd=self.tmp, env=env, timeout=30)
        # compopt works only under readline: outside it, it says so
        errors = [l for l in r.stderr.splitlines()
                  if "not currently executing completion function" not in l]
        self.assertEqual((r.returncode, errors), (0, []), line)
        return [l for l in r.stdout.splitlines() if l]

    def assertCompletes(self, line, want):
        self.assertEqual(sorted(self.complete(line)), sorted(want), repr(line))

    def test_commands(self):
        self.assertCompletes("tpfs ", ["mount", "umount", "ls", "cat", "convert"])
        self.assertCompletes("tpfs mo", ["mount"])
        self.assertCompletes("tpfs c", ["cat", "convert"])
        self.assertCompletes("tpfs --", ["--help", "--version"])
        self.assertCompletes("tpfs frobnicate ", [])

    def test_flags_per_command(self):
        self.assertCompletes("tpfs mount -", ["-o", "-f", "-d", "-s", "--help"])
        self.assertCompletes("tpfs umount -", ["--help"])
        self.assertCompletes("tpfs unmount -", ["--help"])
        self.assertCompletes("tpfs ls -", ["-o", "-h", "--human-readable", "--json",
                                           "--help"])
        self.assertCompletes("tpfs ls --", ["--human-readable", "--json", "--help"])
        self.assertCompletes("tpfs cat -", ["-o", "--help"])
        self.assertCompletes("tpfs convert --", ["--jobs", "--shard-size", "--resume",
                                                 "--help"])
        self.assertCompletes("tpfs convert model out --jobs ", [])
        self.assertCompletes("tpfs convert model out --shard-size ", [])

    def test_option_keys(self):
        self.assertCompletes("tpfs mount -o ca", ["cache_size="])
        self.assertCompletes("tpfs mount -o ", CONVERSION + MOUNT_ONLY)
        self.assertCompletes("tpfs mount -o b", ["block_size=", "by_file", "bf16="])
        self.assertCompletes("tpfs mount model mnt -o by_file,mx", ["by_file,mxfp4="])
        self.assertCompletes("tpfs mount -oal", ["-oallow_other", "-oallow_root"])
        for cmd in ("ls", "cat", "convert"):
            self.assertCompletes("tpfs %s -o " % cmd, CONVERSION)
            self.assertCompletes("tpfs %s -o allow" % cmd, [])

    def test_option_values(self):
        # readline replaces what follows the last '=': the values alone
        self.assertCompletes("tpfs mount -o bf16=", ["f32", "f16", "raw"])
        self.assertCompletes("tpfs mount -o fp8=", ["f16", "f32", "raw"])
        self.assertCompletes("tpfs mount -o dtype=", ["auto", "f32", "f16"])
        self.assertCompletes("tpfs ls -o mxfp4=", ["f32", "f16", "bf16", "raw", "both"])
        self.assertCompletes("tpfs mount -o cache_size=1G,mxfp4=b", ["bf16", "both"])
        self.assertCompletes("tpfs mount -o cache_size=1G,by", ["1G,by_file"])
        self.assertCompletes("tpfs mount -o cache_size=", [])
        # block_size: the powers of two from 64K to 64M
        sizes = ["%dK" % k for k in (64, 128, 256, 512)] + ["%dM" % m for m in
                                                            (1, 2, 4, 8, 16, 32, 64)]
        self.assertCompletes("tpfs convert -o block_size=", sizes)

    def test_paths(self):
        # SRC: folders and .safetensors files; MNT and OUT: folders
        self.assertCompletes("tpfs mount ", ["model", "mnt", "m.safetensors"])
        self.assertCompletes("tpfs mount model ", ["model", "mnt"])
        self.assertCompletes("tpfs mount -f -o by_file model m", ["model", "mnt"])
        self.assertCompletes("tpfs mount -- model ", ["model", "mnt"])
        self.assertCompletes("tpfs mount model mnt ", [])
        self.assertCompletes("tpfs ls m", ["model", "mnt", "m.safetensors"])
        self.assertCompletes("tpfs ls model ", [])
        self.assertCompletes("tpfs cat --json model ", [])
        self.assertCompletes("tpfs convert -o bf16=raw model --jobs 2 ", ["model", "mnt"])
        # no tpfs mount point is relative: folders
        self.assertCompletes("tpfs umount m", ["model", "mnt"])

    def test_mount_offers_what_its_help_lists(self):
        """Every option of `tpfs mount --help` but those it says are
        accepted and ignored (fstab's words)."""
        h = T.run_tpfs("mount", "--help").stdout
        groups, specs = [], []
        for line in h.splitlines():
            if re.match(r"^ {4}\S", line):  # "    key=VALUES   meaning"
                spec, _, meaning = line.strip().partition("  ")
                specs += [s.strip() for s in spec.split(",") if s.strip()]
                if meaning.strip():
                    groups.append((specs, meaning))
                    specs = []
            elif re.match(r"^ {5,}\S", line) and specs:  # the meaning, on its own line
                groups.append((specs, line))
                specs = []
        offered = [s.split("=")[0] + ("=" if "=" in s else "")
                   for specs, meaning in groups if "ignored" not in meaning
                   for s in specs]
        self.assertGreater(len(offered), 15, h)
        self.assertCompletes("tpfs mount -o ", offered)


if __name__ == "__main__":
    T.main()
