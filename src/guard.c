/*
 * SIGBUS to EIO. Each thread keeps a pointer to its current jump buffer; the
 * handler jumps there when set and otherwise restores the default action so
 * that the fault, repeated on return, kills the process as usual. SA_NODEFER
 * keeps SIGBUS unblocked after the jump, so the jump buffer needs no signal
 * mask and the guard costs no system call.
 */
#include "tpfs/guard.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

/* volatile: the handler reads it, which the compiler cannot see, so it
 * would otherwise drop the store before a call it knows (memcpy) as dead. */
static _Thread_local sigjmp_buf *volatile guard_jump;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (guard_jump)
		siglongjmp(*guard_jump, 1);
	/* Not ours (a fault elsewhere, or kill -BUS): die of it as usual. */
	signal(sig, SIG_DFL);
	raise(sig);
}

int tpfs_guard_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}

/* Run fn(arg), which must not take locks or allocate, since it can be
 * abandoned at any instruction. Returns 0, or -EIO if it faulted. */
static int guard_run(void (*fn)(void *arg), void *arg)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 0)) {
		guard_jump = NULL;
		return -EIO;
	}
	guard_jump = &jb;
	fn(arg);
	guard_jump = NULL;
	return 0;
}

struct copy {
	void *dst;
	const void *src;
	size_t n;
};

static void copy_bytes(void *arg)
{
	const struct copy *c = arg;
	memcpy(c->dst, c->src, c->n);
}

int tpfs_guard_copy(void *dst, const void *src, size_t n)
{
	/* An empty file has no mapping (mmap refuses length 0), so src may be
	 * NULL here, which memcpy may not be given even for 0 bytes. */
	if (n == 0)
		return 0;
	struct copy c = {dst, src, n};
	return guard_run(copy_bytes, &c);
}
