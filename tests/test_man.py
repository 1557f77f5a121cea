"""The man pages in tools/man/ against the programs they document.

Every command and flag that `tpfs --help` and `tpfs COMMAND --help` list is
in tpfs(1), in the section of its command; every -o option that
`tpfs mount --help` lists, and every one the option parser (src/options.c:
its keys, their valid values, the mount's own, the kernel's and the
ignored words) accepts, is in its OPTIONS; every option of `tpfs-gen --help` is in tpfs-gen(1).
The pages are read as rendered. Both render without a warning from groff,
and write every option with `\\-`, which renders as the `-` one types,
never with a bare `-`: a hyphen, which renders as U+2010 where the macros
do not map it to `-`, and a command copied from the page then fails.

Environment: TPFS_BIN, the tpfs executable (tpfs-gen beside it).
"""

import os
import re
import shutil
import subprocess
import unittest

import tpfstest as T

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAN = os.path.join(REPO, "tools", "man")
GEN = os.path.join(os.path.dirname(os.path.abspath(T.TPFS)), "tpfs-gen")
FLAG = r"(?<![\w-])(--?[a-z][\w-]*)"


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s: exit status %d: %s" % (args, r.returncode, r.stderr))
    return r.stdout


def need_groff(test):
    if shutil.which("groff") is None:
        test.fail("groff is missing: install groff-base (tools/deps.sh --test)")


def render(page):
    """The page as a reader sees it, each paragraph on one line, without
    hyphenation or font changes: {heading: text} for every section (SH,
    its subsections included) and subsection (SS)."""
    text = run("groff", "-man", "-Tutf8", "-rLL=10000n", "-rHY=0", "-P-cbou",
               os.path.join(MAN, page))
    sections, sh, ss = {}, None, None
    for line in text.splitlines():
        m = re.match(r"^( {3})?(\S.*)$", line)
        if m and not m.group(1):  # SH at the margin
            sh, ss = m.group(2).strip(), None
            sections[sh] = ""
        elif m:  # SS 3 spaces in
            ss = m.group(2).strip()
            sections[ss] = ""
            sections[sh] += line + "\n"
        elif sh:
            for heading in (sh, ss) if ss else (sh,):
                sections[heading] += line + "\n"
    return sections


def has_word(text, word):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(word), text) is not None


def c_table(src, name):
    """The strings of `static const char *const NAME[] = {...};`."""
    m = re.search(r"\b%s\[\]\s*=\s*\{(.*?)\};" % re.escape(name), src, re.S)
    return re.findall(r'"([^"]*)"', m.group(1)) if m else []


class TpfsPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help = run(T.TPFS, "--help")
        cls.usage = [l for l in cls.help.splitlines() if re.match(r"^(usage:)?\s+tpfs ", l)]

    def setUp(self):
        need_groff(self)
        self.page = render("tpfs.1")

    def section(self, prefix):
        """The text of the section whose heading starts with prefix."""
        found = [h for h in self.page if h == prefix or h.startswith(prefix + " ")]
        self.assertEqual(len(found), 1, "no one section '%s' in tpfs.1 (%s)" % (
            prefix, ", ".join(self.page)))
        return self.page[found[0]]

    def commands(self):
        cmds = [re.match(r"^(?:usage:)?\s+tpfs ([a-z]\w*)", l) for l in self.usage]
        cmds = [m.group(1) for m in cmds if m]
        self.assertGreaterEqual(len(cmds), 5, self.help)
        return cmds

    def test_every_command_has_a_section_with_its_flags(self):
        for cmd in self.commands():
            with self.subTest(cmd):
                h = run(T.TPFS, cmd, "--help")
                first = h.splitlines()[0]
                flags = set(re.findall(FLAG, first))
                flags |= set(re.findall(r"^\s+" + FLAG, h, re.M))
                if "COMMAND --help" in self.help:
                    flags.add("--help")
                text = self.section("tpfs " + cmd)
                for flag in sorted(flags):
                    self.assertTrue(has_word(text, flag), "tpfs %s: %s" % (cmd, flag))

    def test_every_usage_form_is_documented(self):
        whole = "".join(self.page.values())
        for line in self.usage:
            words = line.replace("usage:", "").split()
            with self.subTest(line):
                if words[1].isupper():  # the mount helper form: tpfs SRC MNT
                    self.section(" ".join(words[:3]))
                for flag in re.findall(FLAG, line):
                    self.assertTrue(has_word(self.page["SYNOPSIS"], flag), flag)
                    self.assertTrue(has_word(whole, flag), flag)

    def test_every_option_of_mount_help_is_in_options(self):
        h = run(T.TPFS, "mount", "--help")
        # the option lines of -o are indented by 4: "    key=VALUES   meaning"
        specs = [re.split(r"\s{2,}", l.strip())[0] for l in h.splitlines()
                 if re.match(r"^ {4}\S", l)]
        opts = [o.strip() for s in specs for o in s.split(",") if o.strip()]
        self.assertGreater(len(opts), 30, h)
        text = self.page["OPTIONS"]
        for opt in opts:
            self.assertTrue(has_word(text, opt), opt)

    def test_every_option_the_parser_accepts_is_in_options(self):
        with open(os.path.join(REPO, "src", "options.c")) as f:
            src = f.read()
        keys = re.findall(r'key_is\(opt, "(\w+)"', src)
        kernel = c_table(src, "kernel_opts")
        ignored = c_table(src, "ignored_opts")
        prefixes = re.findall(r'strncmp\(opt, "([^"]+)", \d+\)', src)
        own = re.findall(r'strcmp\(opt, "(\w+)"\) == 0', src)  # the mount's own
        valid = {k: c_table(src, k + "_valid") for k in keys}
        for what, found in (("keys", keys), ("kernel_opts", kernel),
                            ("ignored_opts", ignored), ("prefixes", prefixes),
                            ("mount words", own)):
            self.assertTrue(found, "src/options.c: no %s found" % what)
        self.assertTrue(any(valid.values()), "src/options.c: no *_valid table")
        text = self.page["OPTIONS"]
        words = [k + "=" + "|".join(valid[k]) if valid[k] else k for k in keys]
        words += kernel + ignored + own + [p + "*" for p in prefixes]
        for word in words:
            self.assertTrue(has_word(text, word), word)

    def test_exit_statuses_files_examples(self):
        for heading in ("EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"):
            self.assertIn(heading, self.page)
        examples = self.page["EXAMPLES"]
        self.assertIn("mount -t fuse.tpfs", examples)
        self.assertRegex(examples, r"\S+ +\S+ +fuse\.tpfs +\S+ +0 +0")  # an fstab line
        for status in ("0", "1", "2"):
            self.assertRegex(self.page["EXIT STATUS"], r"(?m)^ +%s " % status)


class TpfsGenPage(unittest.TestCase):
    def test_every_option_of_its_help_is_in_options(self):
        need_groff(self)
        h = run(GEN, "--help")
        flags = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", h))
        self.assertGreater(len(flags), 15, h)
        # the fixed sets of values: "--preset demo|gpt-oss-20b", "--dtype bf16|f16|f32"
        values = re.findall(r"--[\w-]+ ([\w-]+(?:\|[\w-]+)+)", h)
        self.assertTrue(values, h)
        text = render("tpfs-gen.1")["OPTIONS"]
        for word in sorted(flags) + [v for vs in values for v in vs.split("|")]:
            self.assertTrue(has_word(text, word), word)


class Rendering(unittest.TestCase):
    def test_pages_render_without_warnings(self):
        need_groff(self)
        for page in sorted(os.listdir(MAN)):
            with self.subTest(page):
                r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8",
                                    os.path.join(MAN, page)],
                                   capture_output=True, text=True)
                self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_options_are_written_with_minus_signs(self):
        for page in sorted(os.listdir(MAN)):
            with open(os.path.join(MAN, page)) as f:
                for n, line in enumerate(f, 1):
                    if line.startswith('.\\"'):
                        continue
                    # "-x" or "--x" where a word starts: a hyphen, not \-
                    self.assertNotRegex(line, r"(?<![\\\w-])--?[A-Za-z]",
                                        "%s:%d" % (page, n))


if __name__ == "__main__":
    T.main()
