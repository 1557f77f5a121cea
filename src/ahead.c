/*
 * Read-ahead (see ahead.h): one lock over each item's run and a ring of
 * queued blocks, which the threads take from in order.
 */
#include "tpfs/ahead.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

/* An item's run of reads in order. */
struct run {
	uint64_t bytes;  /* read in the run */
	uint64_t reads;  /* reads in the run */
	uint64_t next;   /* the block after the last one read */
	uint64_t queued; /* the block after the last one queued */
};

struct job {
	size_t item;
	uint64_t block;
};

struct tpfs_ahead {
	pthread_mutex_t lock;
	pthread_cond_t work;        /* signalled when a job is queued or at stop */
	pthread_cond_t idle;        /* broadcast when the last job is done */
	struct run *runs;           /* lock */
	struct job *ring;           /* lock; budget slots */
	size_t head, n;             /* lock; jobs at ring[head..head+n) */
	size_t busy;                /* lock; jobs being made */
	uint64_t made;              /* lock; blocks fn made */
	bool stop;                  /* lock */
	struct tpfs_ahead_params p;
	tpfs_ahead_fn fn;
	void *ctx;
	unsigned nthreads;
	pthread_t threads[];
};

static void *worker(void *arg)
{
	struct tpfs_ahead *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		if (a->n == 0) {
			if (a->busy == 0)
				pthread_cond_broadcast(&a->idle);
			pthread_cond_wait(&a->work, &a->lock);
			continue;
		}
		struct job j = a->ring[a->head];
		a->head = (a->head + 1) % a->p.budget;
		a->n--;
		if (j.block < a->runs[j.item].next)
			continue; /* its reader got there first */
		a->busy++;
		pthread_mutex_unlock(&a->lock);
		bool made = a->fn(a->ctx, j.item, j.block);
		pthread_mutex_lock(&a->lock);
		a->made += made;
		a->busy--;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

struct tpfs_ahead *tpfs_ahead_create(size_t nitems, const struct tpfs_ahead_params *p,
				     tpfs_ahead_fn fn, void *ctx)
{
	struct tpfs_ahead *a = calloc(1, sizeof(*a) + p->threads * sizeof(pthread_t));
	if (!a)
		return NULL;
	a->runs = calloc(nitems ? nitems : 1, sizeof(*a->runs));
	a->ring = calloc(p->budget, sizeof(*a->ring));
	if (!a->runs || !a->ring) {
		free(a->runs);
		free(a->ring);
		free(a);
		return NULL;
	}
	a->p = *p;
	a->fn = fn;
	a->ctx = ctx;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->idle, NULL);
	/* The signals that end the daemon are for its main thread, as in
	 * libfuse's own workers: these threads block them (and inherit the
	 * mask from here). */
	sigset_t ends, old;
	sigemptyset(&ends);
	sigaddset(&ends, SIGHUP);
	sigaddset(&ends, SIGINT);
	sigaddset(&ends, SIGQUIT);
	sigaddset(&ends, SIGTERM);
	sigaddset(&ends, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &ends, &old);
	int rc = 0;
	for (; rc == 0 && a->nthreads < p->threads; a->nthreads += rc == 0)
		rc = pthread_create(&a->threads[a->nthreads], NULL, worker, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		tpfs_ahead_destroy(a);
		return NULL;
	}
	return a;
}

void tpfs_ahead_destroy(struct tpfs_ahead *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->lock);
	for (unsigned i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->idle);
	free(a->runs);
	free(a->ring);
	free(a);
}

void tpfs_ahead_note(struct tpfs_ahead *a, size_t item, uint64_t first, uint64_t last,
		     uint64_t len, uint64_t nblocks)
{
	pthread_mutex_lock(&a->lock);
	struct run *r = &a->runs[item];
	/* The kernel's requests in flight are served out of order (seen 9
	 * blocks of 1 MiB behind under np.load): a read up to depth + ahead
	 * blocks behind where the run stands continues it, and one up to
	 * `gap` blocks beyond it (the kernel's own readahead, as requests
	 * overtake each other). A read further off starts a new run. */
	if (first + a->p.depth + a->p.gap < r->next || first > r->next + a->p.gap) {
		r->bytes = r->reads = 0;
		r->next = first;
		r->queued = 0;
	}
	r->bytes += len;
	r->reads++;
	if (last + 1 > r->next)
		r->next = last + 1;
	if (r->bytes >= a->p.after && r->reads > 1) {
		uint64_t from = r->queued > last + 1 ? r->queued : last + 1;
		uint64_t to = last + 1 + a->p.depth < nblocks ? last + 1 + a->p.depth : nblocks;
		bool queued = false;
		for (; from < to && a->n + a->busy < a->p.budget; from++, queued = true) {
			a->ring[(a->head + a->n++) % a->p.budget] = (struct job){item, from};
			r->queued = from + 1;
		}
		if (queued)
			pthread_cond_broadcast(&a->work);
	}
	pthread_mutex_unlock(&a->lock);
}

uint64_t tpfs_ahead_made(struct tpfs_ahead *a)
{
	pthread_mutex_lock(&a->lock);
	uint64_t n = a->made;
	pthread_mutex_unlock(&a->lock);
	return n;
}

void tpfs_ahead_wait(struct tpfs_ahead *a)
{
	pthread_mutex_lock(&a->lock);
	while (a->n || a->busy)
		pthread_cond_wait(&a->idle, &a->lock);
	pthread_mutex_unlock(&a->lock);
}
