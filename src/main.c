/*
 * The tpfs command: argument parsing, the mount life cycle (validate the
 * model, mount, daemonize, serve, unmount) and umount. One of the two files
 * that know libfuse (with fuse_ops.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuse_ops.h"
#include "tool.h"

#include "tpfs/file.h"
#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/model.h"
#include "tpfs/options.h"
#include "tpfs/error.h"
#include "tpfs/path.h"
#include "tpfs/mountinfo.h"

static void mount_help(void)
{
	printf("usage: tpfs mount SRC MNT [-o OPT[,OPT...]] [-f] [-d] [-s]\n"
	       "\n"
	       "  -f    stay in the foreground (log to stderr)\n"
	       "  -d    debug log, including every FUSE request (implies -f)\n"
	       "  -s    single-threaded\n"
	       "  -o    comma-separated options:\n"
	       "%s"
	       "    allow_other       let other users read the mount (needs "
	       "user_allow_other\n"
	       "                      in /etc/fuse.conf unless run as root)\n"
	       "    allow_root        let root read the mount too\n"
	       "    auto_unmount      unmount when the daemon dies, even by kill -9\n"
	       "    direct_io         tensor files bypass the kernel's page cache: "
	       "np.load costs\n"
	       "                      less, but shared mappings (np.load "
	       "mmap_mode='r') fail with\n"
	       "                      ENODEV and every read goes to the daemon\n"
	       "    nodev, nosuid, noexec, dev, suid, exec, atime, noatime, sync, "
	       "async, dirsync\n"
	       "                      passed to the kernel\n"
	       "    ro, rw, defaults, auto, noauto, user, users, nouser, owner, "
	       "group, _netdev,\n"
	       "    nofail, relatime, norelatime, strictatime, nodiratime, x-*, "
	       "comment=*\n"
	       "                      accepted and ignored (fstab); the mount is "
	       "always read-only,\n"
	       "                      and has the kernel check every user's "
	       "permissions (default_permissions)\n",
	       tpfs_options_help());
}

struct mount_args {
	const char *src;
	const char *mnt;
	bool foreground, debug, single;
	struct tpfs_options opt;
	struct tpfs_mount_opts kopts; /* the kernel mount's own options */
};

/* Returns 0, 1 after printing help, or -1 after printing an error. */
static int parse_mount_args(int argc, char **argv, struct mount_args *a)
{
	memset(a, 0, sizeof(*a));
	tpfs_options_defaults(&a->opt);
	bool rest = false;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (rest && a->src && a->mnt) {
			fprintf(stderr, "tpfs: unexpected argument '%s'\n", s);
			return -1;
		} else if (rest) {
			*(a->src ? &a->mnt : &a->src) = s;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			mount_help();
			return 1;
		} else if (strcmp(s, "-f") == 0) {
			a->foreground = true;
		} else if (strcmp(s, "-d") == 0) {
			a->debug = a->foreground = true;
		} else if (strcmp(s, "-s") == 0) {
			a->single = true;
		} else if (strncmp(s, "-o", 2) == 0) {
			const char *list = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!list) {
				fprintf(stderr, "tpfs: -o needs a list of options\n");
				return -1;
			}
			struct tpfs_error e;
			if (tpfs_options_parse(&a->opt, list, tpfs_options_mount, &a->kopts,
					       tpfs_options_mount_words(), &e) < 0) {
				fprintf(stderr, "tpfs: %s\n", e.msg);
				return -1;
			}
		} else if (strcmp(s, "--") == 0 && !rest) {
			rest = true; /* what follows are paths, even if they start with - */
		} else if (s[0] == '-' && s[1] && !rest) {
			fprintf(stderr, "tpfs: unknown flag '%s' (see 'tpfs mount --help')\n",
				s);
			return -1;
		} else if (!a->src) {
			a->src = s;
		} else if (!a->mnt) {
			a->mnt = s;
		} else {
			fprintf(stderr, "tpfs: unexpected argument '%s'\n", s);
			return -1;
		}
	}
	if (a->kopts.overflow) {
		fprintf(stderr, "tpfs: too many kernel mount options\n");
		return -1;
	}
	a->opt.shared = strstr(a->kopts.kernel, ",allow_other") != NULL;
	a->opt.direct_io = a->kopts.direct_io;
	if (!a->src || !a->mnt) {
		fprintf(stderr, "tpfs: mount needs SRC and MNT (see 'tpfs mount --help')\n");
		return -1;
	}
	return 0;
}

/* libfuse writes some messages in pieces: collect each thread's pieces
 * into whole lines. */
static bool fuse_said_error; /* libfuse has explained a failure already */

static void fuse_log_to_tpfs(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	if (level <= FUSE_LOG_ERR)
		fuse_said_error = true;
	size_t n = strlen(line);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n = strlen(line);
	if (n && line[n - 1] != '\n' && n + 1 < sizeof(line))
		return;
	tpfs_log((int)level, "%s", line);
	line[0] = '\0';
}

/* The mount point: its real path (for messages, mountinfo and the checks
 * against the source) and the folder itself, held open from the first check
 * to the mount, so that a folder swapped for a link meanwhile cannot send a
 * root mount somewhere else. */
struct mountpoint {
	char *real;
	int fd;          /* O_PATH, or -1 */
	const char *via; /* what mount(2) is given: real, or proc */
	char proc[32];
};

static void mountpoint_close(struct mountpoint *mp)
{
	free(mp->real);
	if (mp->fd >= 0)
		close(mp->fd);
	*mp = (struct mountpoint){.fd = -1};
}

/* The mount point must be an existing folder that is not already a mount
 * point; a dead mount gets advice. */
static int check_mountpoint(const char *mnt, struct mountpoint *mp)
{
	struct stat st;
	struct statvfs sv;
	*mp = (struct mountpoint){.fd = -1};
	/* statvfs always asks the filesystem, so it sees a dead FUSE mount
	 * that a cached stat would hide. */
	if (stat(mnt, &st) < 0 || statvfs(mnt, &sv) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "tpfs: mount point %s does not exist (mkdir it first)\n",
				mnt);
		else if (errno == ENOTCONN)
			fprintf(stderr,
				"tpfs: %s: a previous mount there died (transport endpoint is "
				"not connected); run 'fusermount3 -u %s' first\n",
				mnt, mnt);
		else
			fprintf(stderr, "tpfs: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "tpfs: %s: the mount point is not a folder\n", mnt);
		return -1;
	}
	mp->fd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	mp->real = mp->fd < 0 ? NULL : realpath(mnt, NULL);
	struct stat held;
	struct tpfs_mountinfo mi;
	if (!mp->real) {
		fprintf(stderr, "tpfs: %s: %s\n", mnt, strerror(errno));
	} else if (fstat(mp->fd, &held) < 0 || held.st_dev != st.st_dev ||
		   held.st_ino != st.st_ino) {
		fprintf(stderr, "tpfs: %s: the mount point changed while it was checked\n",
			mnt);
	} else if (tpfs_mountinfo_find(mp->real, &mi)) {
		fprintf(stderr, "tpfs: %s is already a mount point (%s from %s); unmount it "
				"first\n",
			mnt, mi.type, mi.source);
	} else {
		return 0;
	}
	mountpoint_close(mp);
	return -1;
}

/* Where mount(2) mounts: when root mounts by itself, the folder held open
 * (a path through /proc that resolves to that very folder, and that also
 * unmounts it); fusermount3, which mounts for other users and for
 * auto_unmount, resolves the real path with its own checks. Refuses if the
 * real path no longer leads to the held folder, which the checks against
 * the source were made for. */
static int pin_mountpoint(struct mountpoint *mp, bool fusermount)
{
	struct stat held, now;
	if (fstat(mp->fd, &held) < 0 || stat(mp->real, &now) < 0 ||
	    held.st_dev != now.st_dev || held.st_ino != now.st_ino) {
		fprintf(stderr, "tpfs: %s: the mount point was moved or replaced; not "
				"mounting\n",
			mp->real);
		return -1;
	}
	snprintf(mp->proc, sizeof(mp->proc), "/proc/self/fd/%d", mp->fd);
	mp->via = geteuid() == 0 && !fusermount ? mp->proc : mp->real;
	return 0;
}

/* argv for fuse_session_new: the kernel mount options, with fsname set to
 * the source path (escaped for libfuse's comma-separated syntax). */
static int build_fuse_args(const struct mount_args *a, const char *root,
			   struct fuse_args *fa)
{
	char *opts = NULL, *escaped = NULL, *fsname = NULL;
	int rc = -1;
	/* nosuid and nodev unless dev or suid is given. mount.fuse3 (fstab,
	 * mount -t fuse.tpfs) gives dev,suid unless the options say nodev or
	 * nosuid, as mount(8) would; harmless either way, since every served
	 * mode is read bits only: no device, no set-user-ID program. */
	const char *k = a->kopts.kernel;
	bool suid = strstr(k, ",suid") != NULL, dev = strstr(k, ",dev") != NULL;
	if (fuse_opt_add_opt(&opts, "ro,default_permissions,subtype=tpfs") < 0 ||
	    (!suid && fuse_opt_add_opt(&opts, "nosuid") < 0) ||
	    (!dev && fuse_opt_add_opt(&opts, "nodev") < 0) ||
	    fuse_opt_add_opt_escaped(&escaped, root) < 0 ||
	    asprintf(&fsname, "fsname=%s", escaped) < 0) {
		fsname = NULL;
		goto out;
	}
	if (fuse_opt_add_opt(&opts, fsname) < 0 ||
	    (k[0] && fuse_opt_add_opt(&opts, k + 1) < 0))
		goto out;
	if (fuse_opt_add_arg(fa, "tpfs") < 0 || fuse_opt_add_arg(fa, "-o") < 0 ||
	    fuse_opt_add_arg(fa, opts) < 0 ||
	    (a->debug && fuse_opt_add_arg(fa, "-d") < 0))
		goto out;
	rc = 0;
out:
	free(opts);
	free(escaped);
	free(fsname);
	return rc;
}

/* The kernel caps a FUSE mount's readahead at its backing device's setting
 * (128 KiB by default), whatever max_readahead init asks for. Raise the
 * setting of this mount's own device to TPFS_READAHEAD so that sequential
 * reads come as 1 MiB requests. Needs root; otherwise reads stay at
 * 128 KiB. The device is found in
 * mountinfo, since stat on the mount point would wait for the daemon's
 * loop, which has not started yet. */
static void raise_readahead(const char *mnt)
{
	struct tpfs_mountinfo mi;
	if (!tpfs_mountinfo_find(mnt, &mi))
		return;
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", mi.dev);
	FILE *ra = fopen(path, "w");
	bool ok = ra && fprintf(ra, "%d\n", TPFS_READAHEAD >> 10) > 0;
	if (ra && fclose(ra) != 0)
		ok = false;
	tpfs_log(LOG_DEBUG, "readahead of %s: %s", mnt,
		 ok ? "raised" : "left at the kernel's default (not root?)");
}

#define TPFS_MIN_WORKERS 4
#define TPFS_MAX_WORKERS 10

static long cpus(void)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
							   : sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? n : 1;
}

/* Worker threads of the multithreaded loop, which starts one whenever none
 * is idle and never stops one. A worker in a read holds a buffer of the
 * read's size and pins the cache blocks the read spans (which the cache
 * cannot evict while they are sent), so their number bounds the daemon's
 * memory beyond cache_size. Converting is CPU-bound: workers past the CPUs only add
 * memory. Twice the CPUs lets one wait for a source page while another
 * converts; at least 4 keep a few such waits going on small machines; at
 * most 10, libfuse 3.14's default, so larger machines serve as before. */
static unsigned worker_threads(void)
{
	long n = 2 * cpus();
	return (unsigned)(n < TPFS_MIN_WORKERS   ? TPFS_MIN_WORKERS
			  : n > TPFS_MAX_WORKERS ? TPFS_MAX_WORKERS
						 : n);
}

#define TPFS_MAX_AHEAD_THREADS 4

/* Threads that make blocks ahead of readers reading in order (see
 * tpfs_file_start_ahead): the CPUs less one, which is the reader's (it
 * copies what they made), at least one, at most TPFS_MAX_AHEAD_THREADS. */
static unsigned ahead_threads(void)
{
	long n = cpus() - 1;
	return (unsigned)(n < 1 ? 1 : n > TPFS_MAX_AHEAD_THREADS ? TPFS_MAX_AHEAD_THREADS : n);
}

static int serve(struct fuse_session *se, bool single)
{
	if (single)
		return fuse_session_loop(se);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	unsigned workers = worker_threads();
	fuse_loop_cfg_set_max_threads(cfg, workers);
	tpfs_log(LOG_DEBUG, "serving with up to %u worker threads", workers);
	int rc = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

static int cmd_mount(int argc, char **argv)
{
	struct mount_args a;
	int rc = parse_mount_args(argc, argv, &a);
	if (rc)
		return rc > 0 ? 0 : 2;
	tpfs_log_set_debug(a.debug);
	/* The source first: a wrong source is the likelier mistake. */
	struct stat src_st;
	if (stat(a.src, &src_st) < 0) {
		fprintf(stderr, "tpfs: %s: %s\n", a.src, strerror(errno));
		return 1;
	}
	struct mountpoint mp;
	if (check_mountpoint(a.mnt, &mp) < 0)
		return 1;
	const char *mnt = mp.real;
	if (tpfs_guard_install() < 0) {
		fprintf(stderr, "tpfs: cannot install the SIGBUS handler\n");
		mountpoint_close(&mp);
		return 1;
	}

	struct tpfs_error e;
	struct tpfs_model *m = NULL;
	struct tpfs_view *view = NULL;
	struct fuse_session *se = NULL;
	struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);
	bool mounted = false, handlers = false;
	int status = 1;

	if (tpfs_model_open(a.src, &a.opt, &m, &e) < 0) {
		fprintf(stderr, "tpfs: %s\n", e.msg);
		goto out;
	}
	if (tpfs_path_within(mnt, m->root)) {
		fprintf(stderr, "tpfs: mounting on %s would hide the source %s; choose "
				"another mount point\n",
			a.mnt, a.src);
		goto out;
	}
	if (tpfs_path_within(m->root, mnt)) {
		fprintf(stderr, "tpfs: %s is inside the source %s: the mount would show "
				"itself to later loads of it; choose a mount point outside\n",
			a.mnt, a.src);
		goto out;
	}
	view = tpfs_view_create(m);
	if (!view) {
		fprintf(stderr, "tpfs: out of memory\n");
		goto out;
	}
	if (build_fuse_args(&a, m->root, &fa) < 0) {
		fprintf(stderr, "tpfs: out of memory\n");
		goto out;
	}
	fuse_set_log_func(fuse_log_to_tpfs);
	se = fuse_session_new(&fa, &tpfs_fuse_ops, sizeof(tpfs_fuse_ops), view);
	if (!se)
		goto out; /* libfuse said why */
	if (fuse_set_signal_handlers(se) < 0)
		goto out;
	handlers = true;
	if (tpfs_path_entries(mnt, NULL) > 0)
		tpfs_log(LOG_WARNING, "%s is not empty: the mount hides its files until it "
			 "is unmounted", a.mnt);
	if (pin_mountpoint(&mp, strstr(a.kopts.kernel, ",auto_unmount") != NULL) < 0)
		goto out;
	if (fuse_session_mount(se, mp.via) < 0) {
		if (!fuse_said_error)
			fprintf(stderr, "tpfs: cannot mount %s on %s\n", a.src, mnt);
		goto out;
	}
	mounted = true;
	raise_readahead(mnt);
	/* Returns in the child only: the parent exits 0 once the child runs. */
	if (fuse_daemonize(a.foreground) < 0)
		goto out;
	if (!a.foreground)
		tpfs_log_use_syslog(true);
	/* Threads only now: fuse_daemonize forks, and a child has none. The
	 * kernel reads TPFS_READAHEAD around a page fault in a mapping of a
	 * file, which looks like a short run of reads in order: twice that
	 * read in order is a reader reading in order. */
	if (!a.single && tpfs_file_start_ahead(view, ahead_threads(), 2 * TPFS_READAHEAD) < 0)
		tpfs_log(LOG_WARNING, "cannot start the read-ahead threads (out of memory or "
			 "threads): serving without reading ahead");
	tpfs_log(LOG_INFO, "serving %s on %s: %zu tensors", m->root, mnt, m->ntensors);
	rc = serve(se, a.single);
	if (rc < 0)
		tpfs_log(LOG_ERR, "the FUSE loop failed: %s", strerror(-rc));
	else
		status = 0; /* 0, or the signal that ended the loop */
out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&fa);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	mountpoint_close(&mp);
	return status;
}

static int cmd_umount(int argc, char **argv)
{
	if (argc == 1 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
		printf("usage: tpfs umount MNT\n\nUnmounts a tpfs mount (with fusermount3 "
		       "-u); the daemon then exits.\nOnly tpfs mounts (type " TPFS_MOUNTINFO_TYPE
		       " in /proc/self/mountinfo), live or\ndead, are unmounted: anything "
		       "else mounted on MNT is left alone.\n");
		return 0;
	}
	if (argc != 1 || argv[0][0] == '-') {
		fprintf(stderr, "usage: tpfs umount MNT\n");
		return 2;
	}
	/* The mount point as mountinfo spells it: links resolved (a dead mount
	 * cannot be resolved: then the path as given, made absolute). */
	char *abs = realpath(argv[0], NULL), cwd[4096];
	if (!abs && argv[0][0] != '/' && getcwd(cwd, sizeof(cwd)))
		abs = tpfs_path_join(cwd, argv[0]);
	else if (!abs)
		abs = strdup(argv[0]);
	for (size_t n = abs ? strlen(abs) : 0; n > 1 && abs[n - 1] == '/'; n--)
		abs[n - 1] = '\0'; /* "mnt/" is mountinfo's "mnt" */
	struct tpfs_mountinfo mi;
	if (!abs || !tpfs_mountinfo_find(abs, &mi)) {
		struct stat st;
		if (stat(argv[0], &st) < 0 && errno == ENOENT)
			fprintf(stderr, "tpfs: %s does not exist\n", argv[0]);
		else
			fprintf(stderr, "tpfs: %s is not mounted\n", argv[0]);
		free(abs);
		return 1;
	}
	/* Run by root, fusermount3 -u unmounts whatever is there (a tmpfs, a
	 * bind mount, another FUSE filesystem): only tpfs's own mounts are
	 * ours to take down. A dead tpfs mount still says fuse.tpfs. */
	if (strcmp(mi.type, TPFS_MOUNTINFO_TYPE) != 0) {
		fprintf(stderr, "tpfs: %s is a mount of type %s (source %s), not a tpfs "
				"mount: not unmounting it\n",
			argv[0], mi.type, mi.source);
		free(abs);
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", abs, (char *)NULL);
		fprintf(stderr, "tpfs: cannot run fusermount3: %s (install the fuse3 "
				"package)\n",
			strerror(errno));
		_exit(127);
	}
	int status = 1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = 1;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	if (rc != 0 && rc != 127 && tpfs_mountinfo_find(abs, &mi))
		fprintf(stderr, "tpfs: %s is still mounted: close the files and programs "
				"using it ('fuser -vm %s' lists them), or detach it now with "
				"'fusermount3 -uz %s'\n",
			argv[0], argv[0], argv[0]);
	free(abs);
	return rc ? 1 : 0;
}

/* The commands: mount and umount here, the tools in tool.c and export.c
 * (which parse their own arguments, as tpfs_tool_main says). */
struct command {
	const char *name;
	const char *args;                  /* for the usage line */
	int (*run)(int argc, char **argv);
	const struct tpfs_tool *tool;
};

static const struct command commands[] = {
	{"mount", "SRC MNT [-o OPT[,OPT...]] [-f] [-d] [-s]", cmd_mount, NULL},
	{"umount", "MNT", cmd_umount, NULL},
	{"ls", NULL, NULL, &tpfs_tool_ls},
	{"cat", NULL, NULL, &tpfs_tool_cat},
	{"convert", NULL, NULL, &tpfs_export_convert},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];
		fprintf(out, "%s tpfs %s %s\n", i ? "      " : "usage:", c->name,
			c->tool ? c->tool->args : c->args);
	}
	fprintf(out, "       tpfs SRC MNT [-o OPT[,OPT...]]     (mount helper form, for "
		     "fstab)\n"
		     "       tpfs --version | --help\n"
		     "\n"
		     "Mounts a Safetensors model (a folder or one .safetensors file) as a\n"
		     "read-only tree of NumPy .npy files; ls, cat and convert give the same\n"
		     "files without FUSE. 'tpfs COMMAND --help' says more.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("tpfs %s (libfuse %d.%d)\n", TPFS_VERSION, fuse_version() / 100,
		       fuse_version() % 100);
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "unmount") == 0)
		cmd = "umount";
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];
		if (strcmp(cmd, c->name) == 0)
			return c->tool ? tpfs_tool_main(c->tool, argc - 2, argv + 2)
				       : c->run(argc - 2, argv + 2);
	}
	if (cmd[0] != '-' && argc >= 3)
		return cmd_mount(argc - 1, argv + 1); /* tpfs SRC MNT -o ... */
	fprintf(stderr, "tpfs: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
