/*
 * Read-ahead (see ahead.h): one lock over each item's run and a ring of
 * queued blocks, which the threads take from in order.
 */
#include "tpfs/ahead.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* An item's run of reads in order. */
struct run {
	uint64_t start;  /* first block of the run */
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
	struct run *runs;           /* lock */
	struct job *ring;           /* lock; budget slots */
	size_t head, n;             /* lock; jobs at ring[head..head+n) */
	size_t busy;                /* lock; jobs being made */
	uint64_t queued;            /* lock */
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
			pthread_cond_wait(&a->work, &a->lock);
			continue;
		}
		struct job j = a->ring[a->head];
		a->head = (a->head + 1) % a->p.budget;
		a->n--;
		a->busy++;
		pthread_mutex_unlock(&a->lock);
		a->fn(a->ctx, j.item, j.block);
		pthread_mutex_lock(&a->lock);
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
	for (; a->nthreads < p->threads; a->nthreads++)
		if (pthread_create(&a->threads[a->nthreads], NULL, worker, a) != 0) {
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
	free(a->runs);
	free(a->ring);
	free(a);
}

void tpfs_ahead_note(struct tpfs_ahead *a, size_t item, uint64_t first, uint64_t last,
		     uint64_t nblocks)
{
	pthread_mutex_lock(&a->lock);
	struct run *r = &a->runs[item];
	/* The kernel's requests in flight are served out of order (seen 9
	 * blocks of 1 MiB behind under np.load): a read up to after + depth
	 * blocks behind or beyond where the run stands continues it. */
	uint64_t slack = a->p.after + a->p.depth;
	bool follows = first + slack >= r->next && first <= r->next + slack;
	if (!follows) {
		r->start = first;
		r->next = last + 1;
		r->queued = 0;
	} else if (last + 1 > r->next) {
		r->next = last + 1;
	}
	if (r->next - r->start >= a->p.after) {
		uint64_t from = r->queued > last + 1 ? r->queued : last + 1;
		uint64_t to = last + 1 + a->p.depth < nblocks ? last + 1 + a->p.depth : nblocks;
		size_t queued = 0;
		for (; from < to && a->n + a->busy < a->p.budget; from++, queued++) {
			a->ring[(a->head + a->n++) % a->p.budget] = (struct job){item, from};
			r->queued = from + 1;
		}
		a->queued += queued;
		if (queued)
			pthread_cond_broadcast(&a->work);
	}
	pthread_mutex_unlock(&a->lock);
}

uint64_t tpfs_ahead_queued(struct tpfs_ahead *a)
{
	pthread_mutex_lock(&a->lock);
	uint64_t n = a->queued;
	pthread_mutex_unlock(&a->lock);
	return n;
}
