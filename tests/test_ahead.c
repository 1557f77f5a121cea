/*
 * Read-ahead: which blocks a run of reads in order queues (the blocks
 * after it, each once, not past the end), that random reads and short
 * runs queue nothing, that reads served out of order keep the run, that
 * a jump starts a new run, that the budget bounds the blocks waiting or
 * being made, and that destroy waits for the blocks being made.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "tpfs/ahead.h"

#define MAXMADE 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_closed;      /* lock: made blocks wait while set */
static size_t nmade;          /* lock */
static struct {
	size_t item;
	uint64_t block;
} made[MAXMADE];              /* lock */
static atomic_int slow_ms;
static atomic_bool taken, slow_done;

static void make(void *ctx, size_t item, uint64_t block)
{
	(void)ctx;
	atomic_store(&taken, true);
	int ms = atomic_load(&slow_ms);
	if (ms) {
		struct timespec ts = {0, ms * 1000000L};
		nanosleep(&ts, NULL);
		atomic_store(&slow_done, true);
	}
	pthread_mutex_lock(&lock);
	while (gate_closed)
		pthread_cond_wait(&gate_cv, &lock);
	if (nmade < MAXMADE) {
		made[nmade].item = item;
		made[nmade].block = block;
	}
	nmade++;
	pthread_mutex_unlock(&lock);
}

static void reset(void)
{
	pthread_mutex_lock(&lock);
	nmade = 0;
	gate_closed = false;
	pthread_mutex_unlock(&lock);
	atomic_store(&slow_ms, 0);
	atomic_store(&taken, false);
	atomic_store(&slow_done, false);
}

static size_t made_count(void)
{
	pthread_mutex_lock(&lock);
	size_t n = nmade;
	pthread_mutex_unlock(&lock);
	return n;
}

/* Wait until every queued block was made; false after 5 s. */
static bool settle(struct tpfs_ahead *a)
{
	for (int i = 0; i < 5000; i++) {
		if (made_count() == tpfs_ahead_queued(a))
			return true;
		struct timespec ts = {0, 1000000L};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* The blocks made for item, as a bit set over blocks 0..63; a block made
 * twice sets *twice. */
static uint64_t made_set(size_t item, bool *twice)
{
	uint64_t set = 0;
	*twice = false;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nmade && i < MAXMADE; i++) {
		if (made[i].item != item || made[i].block >= 64)
			continue;
		uint64_t bit = 1ull << made[i].block;
		*twice |= (set & bit) != 0;
		set |= bit;
	}
	pthread_mutex_unlock(&lock);
	return set;
}

static uint64_t range(uint64_t from, uint64_t to) /* blocks [from, to) */
{
	uint64_t set = 0;
	for (uint64_t b = from; b < to; b++)
		set |= 1ull << b;
	return set;
}

static struct tpfs_ahead *create(unsigned threads, uint64_t after, uint64_t depth,
				 size_t budget)
{
	reset();
	struct tpfs_ahead_params p = {threads, after, depth, budget};
	struct tpfs_ahead *a = tpfs_ahead_create(4, &p, make, NULL);
	CHECK(a != NULL);
	return a;
}

static void a_run_in_order_queues_the_blocks_after_it(void)
{
	struct tpfs_ahead *a = create(1, 4, 3, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 3; b++)
		tpfs_ahead_note(a, 0, b, b, 40);
	CHECK(tpfs_ahead_queued(a) == 0); /* a run of 3 blocks: too short */
	tpfs_ahead_note(a, 0, 3, 3, 40);   /* 4 blocks in order: 4, 5, 6 */
	tpfs_ahead_note(a, 0, 4, 4, 40);   /* and 7 */
	CHECK(settle(a));
	bool twice;
	CHECKF(made_set(0, &twice) == range(4, 8), "made %#llx",
	       (unsigned long long)made_set(0, &twice));
	CHECK(!twice);
	CHECK(tpfs_ahead_queued(a) == 4);
	/* reads of two blocks each (a request across a block's end) */
	tpfs_ahead_note(a, 0, 5, 6, 40); /* 8, 9 */
	tpfs_ahead_note(a, 0, 7, 8, 40); /* 10, 11 */
	CHECK(settle(a));
	CHECK(made_set(0, &twice) == range(4, 12));
	CHECK(!twice);
	tpfs_ahead_destroy(a);
}

static void random_reads_and_short_runs_queue_nothing(void)
{
	struct tpfs_ahead *a = create(1, 4, 3, 64);
	if (!a)
		return;
	const uint64_t at[] = {0, 50, 20, 90, 35, 70, 5, 60};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		tpfs_ahead_note(a, 0, at[i], at[i] + 1, 100);
	/* what the kernel reads around one page fault: 3 blocks in order */
	for (uint64_t b = 40; b < 43; b++)
		tpfs_ahead_note(a, 1, b, b, 100);
	CHECK(tpfs_ahead_queued(a) == 0);
	tpfs_ahead_destroy(a);
	CHECK(made_count() == 0);
}

static void reads_out_of_order_keep_the_run(void)
{
	struct tpfs_ahead *a = create(1, 4, 3, 64);
	if (!a)
		return;
	const uint64_t at[] = {0, 2, 1, 3, 5, 4, 7, 6, 8};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		tpfs_ahead_note(a, 0, at[i], at[i], 40);
	CHECK(settle(a));
	bool twice;
	CHECKF(made_set(0, &twice) == range(4, 12), "made %#llx",
	       (unsigned long long)made_set(0, &twice));
	CHECK(!twice);
	tpfs_ahead_destroy(a);
}

static void the_end_of_the_item_bounds_it(void)
{
	struct tpfs_ahead *a = create(1, 4, 8, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 6; b++)
		tpfs_ahead_note(a, 2, b, b, 7);
	CHECK(settle(a));
	bool twice;
	CHECK(made_set(2, &twice) == range(4, 7)); /* queued at block 3 */
	CHECK(tpfs_ahead_queued(a) == 3);
	tpfs_ahead_destroy(a);
}

static void a_jump_starts_a_new_run(void)
{
	struct tpfs_ahead *a = create(1, 4, 2, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 4; b++) /* queues 4, 5 */
		tpfs_ahead_note(a, 0, b, b, 64);
	CHECK(settle(a));
	uint64_t n = tpfs_ahead_queued(a);
	CHECK(n == 2);
	/* far beyond: a new run, which must grow to 4 blocks again */
	for (uint64_t b = 40; b < 43; b++)
		tpfs_ahead_note(a, 0, b, b, 64);
	CHECK(tpfs_ahead_queued(a) == n);
	tpfs_ahead_note(a, 0, 43, 43, 64); /* queues 44, 45 */
	CHECK(settle(a));
	bool twice;
	CHECK(made_set(0, &twice) == (range(4, 6) | range(44, 46)));
	/* back to the start: read again from 0, made again */
	for (uint64_t b = 0; b < 4; b++)
		tpfs_ahead_note(a, 0, b, b, 64);
	CHECK(settle(a));
	CHECK(tpfs_ahead_queued(a) == 6);
	tpfs_ahead_destroy(a);
}

static void runs_of_items_are_their_own(void)
{
	struct tpfs_ahead *a = create(2, 4, 2, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 4; b++) {
		tpfs_ahead_note(a, 0, b, b, 64);
		tpfs_ahead_note(a, 3, 20 + b, 20 + b, 64);
	}
	CHECK(settle(a));
	bool twice;
	CHECK(made_set(0, &twice) == range(4, 6));
	CHECK(made_set(3, &twice) == range(24, 26));
	tpfs_ahead_destroy(a);
}

static void the_budget_bounds_blocks_waiting_or_being_made(void)
{
	struct tpfs_ahead *a = create(1, 2, 8, 3);
	if (!a)
		return;
	pthread_mutex_lock(&lock);
	gate_closed = true; /* the thread holds its first block */
	pthread_mutex_unlock(&lock);
	for (uint64_t b = 0; b < 6; b++)
		tpfs_ahead_note(a, 0, b, b, 64);
	CHECKF(tpfs_ahead_queued(a) == 3, "queued %llu",
	       (unsigned long long)tpfs_ahead_queued(a));
	pthread_mutex_lock(&lock);
	gate_closed = false;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&lock);
	CHECK(settle(a));
	bool twice;
	CHECK(made_set(0, &twice) == range(2, 5));
	/* room again: the blocks after this read (5 and 6 were read) */
	tpfs_ahead_note(a, 0, 6, 6, 64);
	CHECK(settle(a));
	CHECK(made_set(0, &twice) == (range(2, 5) | range(7, 10)));
	CHECK(!twice);
	tpfs_ahead_destroy(a);
}

static void destroy_waits_for_blocks_being_made(void)
{
	struct tpfs_ahead *a = create(1, 1, 1, 4);
	if (!a)
		return;
	atomic_store(&slow_ms, 100);
	tpfs_ahead_note(a, 0, 0, 0, 8); /* queues block 1 */
	for (int i = 0; i < 5000 && !atomic_load(&taken); i++) {
		struct timespec ts = {0, 1000000L};
		nanosleep(&ts, NULL); /* until the thread took it */
	}
	CHECK(!atomic_load(&slow_done));
	tpfs_ahead_destroy(a);
	CHECK(atomic_load(&slow_done));
	CHECK(made_count() == 1);
}

int main(void)
{
	RUN(a_run_in_order_queues_the_blocks_after_it);
	RUN(random_reads_and_short_runs_queue_nothing);
	RUN(reads_out_of_order_keep_the_run);
	RUN(the_end_of_the_item_bounds_it);
	RUN(a_jump_starts_a_new_run);
	RUN(runs_of_items_are_their_own);
	RUN(the_budget_bounds_blocks_waiting_or_being_made);
	RUN(destroy_waits_for_blocks_being_made);
	tpfs_ahead_destroy(NULL);
	return check_done();
}
