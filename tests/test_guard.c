/*
 * The SIGBUS guard: reading a mapping of a file truncated after it was
 * mapped returns -EIO instead of killing the process, repeatedly, from
 * several threads; outside a guard such a fault still kills, as it should.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "check.h"
#include "fixture.h"
#include "tpfs/guard.h"

static char *dir;

/* Map a 1 MiB file, then cut it to 4 KiB: pages past it raise SIGBUS. */
static unsigned char *truncated_mapping(const char *name)
{
	static unsigned char block[1 << 20];
	memset(block, 7, sizeof(block));
	CHECK(fx_write(dir, name, block, sizeof(block)) == 0);
	char *p = fx_path(dir, name);
	int fd = open(p, O_RDWR);
	unsigned char *m = mmap(NULL, sizeof(block), PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	CHECK(ftruncate(fd, 4096) == 0);
	close(fd);
	free(p);
	return m;
}

static void faulting_copy_returns_eio(void)
{
	unsigned char *m = truncated_mapping("a");
	unsigned char out[8192];
	CHECK(tpfs_guard_copy(out, m, 4096) == 0);
	CHECK(out[0] == 7 && out[4095] == 7);
	for (int i = 0; i < 3; i++) /* again and again: the handler stays armed */
		CHECK(tpfs_guard_copy(out, m + 4096 * (i + 1), 4096) == -EIO);
	CHECK(tpfs_guard_copy(out, m + 100, 8000) == -EIO);
	munmap(m, 1 << 20);
}

static void copy_of_nothing_reads_nothing(void)
{
	/* An empty file has no mapping (mmap refuses length 0): copying its
	 * zero bytes from NULL must work, and memcpy may not be given NULL. */
	unsigned char out[1] = {9};
	CHECK(tpfs_guard_copy(out, NULL, 0) == 0);
	CHECK(out[0] == 9);
}

static void *fault_many(void *arg)
{
	unsigned char *m = arg;
	unsigned char out[4096];
	long bad = 0;
	for (int i = 0; i < 200; i++)
		bad += tpfs_guard_copy(out, m + 8192 + 4096 * (i % 100), 4096) != -EIO;
	return (void *)bad;
}

static void threads_fault_independently(void)
{
	unsigned char *m = truncated_mapping("b");
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, fault_many, m);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		CHECK(bad == NULL);
	}
	munmap(m, 1 << 20);
}

static void unguarded_fault_still_kills(void)
{
	unsigned char *m = truncated_mapping("c");
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		volatile unsigned char x = m[8192];
		(void)x;
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	munmap(m, 1 << 20);
}

int main(void)
{
	dir = fx_tmpdir();
	CHECK(tpfs_guard_install() == 0);
	RUN(faulting_copy_returns_eio);
	RUN(copy_of_nothing_reads_nothing);
	RUN(threads_fault_independently);
	RUN(unguarded_fault_still_kills);
	fx_rmtree(dir);
	return check_done();
}
