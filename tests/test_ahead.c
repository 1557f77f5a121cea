/*
 * Read-ahead: which blocks a run of reads in order queues (the blocks
 * after it, each once, not past the end), that random reads and short
 * runs (reads further apart than the gap, or a single read) queue nothing, that reads served out of order keep the run, that a
 * jump starts a new run, that the budget bounds the blocks waiting or
 * being made, that queued blocks a reader read first are dropped, and
 * that destroy waits for the blocks being made.
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

static bool make(void *ctx, size_t item, uint64_t block)
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
	return true;
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

static void gate(bool closed)
{
	pthread_mutex_lock(&lock);
	gate_closed = closed;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&lock);
}

static size_t made_count(void)
{
	pthread_mutex_lock(&lock);
	size_t n = nmade;
	pthread_mutex_unlock(&lock);
	return n;
}

/* Until a thread took a block (false after 5 s). */
static bool until_taken(void)
{
	for (int i = 0; i < 5000 && !atomic_load(&taken); i++) {
		struct timespec ts = {0, 1000000L};
		nanosleep(&ts, NULL);
	}
	return atomic_load(&taken);
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

/* after in blocks (the unit of a read's length here), a gap of half
 * that, as the mount has. */
static struct tpfs_ahead *create(unsigned threads, uint64_t after, uint64_t depth,
				 size_t budget)
{
	reset();
	struct tpfs_ahead_params p = {threads, after, after / 2 ? after / 2 : 1, depth, budget};
	struct tpfs_ahead *a = tpfs_ahead_create(4, &p, make, NULL);
	CHECK(a != NULL);
	return a;
}

/* A read of blocks [first, last] of item, each block one unit long. */
static void note(struct tpfs_ahead *a, size_t item, uint64_t first, uint64_t last,
		 uint64_t nblocks)
{
	tpfs_ahead_note(a, item, first, last, last - first + 1, nblocks);
}

/* The same, then the threads catch up (so that no queued block is dropped
 * for being read first). */
static void read_then_wait(struct tpfs_ahead *a, size_t item, uint64_t first, uint64_t last,
			   uint64_t nblocks)
{
	note(a, item, first, last, nblocks);
	tpfs_ahead_wait(a);
}

static void a_run_in_order_queues_the_blocks_after_it(void)
{
	struct tpfs_ahead *a = create(1, 4, 3, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 3; b++)
		read_then_wait(a, 0, b, b, 40);
	CHECK(made_count() == 0);       /* a run of 3 blocks: too short */
	read_then_wait(a, 0, 3, 3, 40); /* 4 blocks in order: 4, 5, 6 */
	read_then_wait(a, 0, 4, 4, 40); /* and 7 */
	bool twice;
	CHECKF(made_set(0, &twice) == range(4, 8), "made %#llx",
	       (unsigned long long)made_set(0, &twice));
	CHECK(!twice);
	/* reads of two blocks each (a request across a block's end) */
	read_then_wait(a, 0, 5, 6, 40); /* 8, 9 */
	read_then_wait(a, 0, 7, 8, 40); /* 10, 11 */
	CHECK(made_set(0, &twice) == range(4, 12));
	CHECK(!twice);
	CHECK(tpfs_ahead_made(a) == 8);
	tpfs_ahead_destroy(a);
}

static void random_reads_and_short_runs_queue_nothing(void)
{
	struct tpfs_ahead *a = create(1, 4, 3, 64);
	if (!a)
		return;
	const uint64_t at[] = {0, 50, 20, 90, 35, 70, 5, 60};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		read_then_wait(a, 0, at[i], at[i] + 1, 100);
	/* what the kernel reads around one page fault: 3 blocks in order */
	for (uint64_t b = 40; b < 43; b++)
		read_then_wait(a, 1, b, b, 100);
	/* reads 4 blocks apart, each skipping more than the gap of 2 */
	for (uint64_t i = 0; i < 20; i++)
		read_then_wait(a, 2, 4 * i, 4 * i, 100);
	/* one read of 4 blocks: long enough, but one read */
	read_then_wait(a, 3, 10, 13, 100);
	CHECK(made_count() == 0);
	CHECK(tpfs_ahead_made(a) == 0);
	tpfs_ahead_destroy(a);
}

static void reads_out_of_order_keep_the_run(void)
{
	struct tpfs_ahead *a = create(1, 4, 3, 64);
	if (!a)
		return;
	/* reads behind the run (1, 4, 6) count, and queue nothing of their
	 * own: 4 blocks read at 3 queue 4-6, then each read the next ones */
	const uint64_t at[] = {0, 2, 1, 3, 5, 4, 7, 6, 8};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		read_then_wait(a, 0, at[i], at[i], 40);
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
		read_then_wait(a, 2, b, b, 7);
	bool twice;
	CHECK(made_set(2, &twice) == range(4, 7)); /* queued at block 3 */
	CHECK(made_count() == 3);
	tpfs_ahead_destroy(a);
}

static void a_jump_starts_a_new_run(void)
{
	struct tpfs_ahead *a = create(1, 4, 2, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 4; b++) /* queues 4, 5 */
		read_then_wait(a, 0, b, b, 64);
	CHECK(made_count() == 2);
	/* far beyond: a new run, which must grow to 4 blocks again */
	for (uint64_t b = 40; b < 43; b++)
		read_then_wait(a, 0, b, b, 64);
	CHECK(made_count() == 2);
	read_then_wait(a, 0, 43, 43, 64); /* queues 44, 45 */
	bool twice;
	CHECK(made_set(0, &twice) == (range(4, 6) | range(44, 46)));
	/* back to the start: read again from 0, made again */
	for (uint64_t b = 0; b < 4; b++)
		read_then_wait(a, 0, b, b, 64);
	CHECK(made_count() == 6);
	tpfs_ahead_destroy(a);
}

static void runs_of_items_are_their_own(void)
{
	struct tpfs_ahead *a = create(2, 4, 2, 64);
	if (!a)
		return;
	for (uint64_t b = 0; b < 4; b++) {
		note(a, 0, b, b, 64);
		note(a, 3, 20 + b, 20 + b, 64);
	}
	tpfs_ahead_wait(a);
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
	gate(true); /* the thread holds its first block */
	note(a, 0, 0, 0, 64);
	note(a, 0, 1, 1, 64); /* queues 2, 3, 4: the budget */
	CHECK(until_taken());
	note(a, 0, 1, 1, 64); /* would queue 5 on, no room */
	gate(false);
	tpfs_ahead_wait(a);
	bool twice;
	CHECK(made_set(0, &twice) == range(2, 5));
	/* room again: the blocks after the last queued */
	read_then_wait(a, 0, 2, 2, 64);
	CHECK(made_set(0, &twice) == range(2, 8));
	CHECK(!twice);
	tpfs_ahead_destroy(a);
}

static void blocks_their_reader_reached_first_are_dropped(void)
{
	struct tpfs_ahead *a = create(1, 2, 8, 3);
	if (!a)
		return;
	gate(true);
	note(a, 0, 0, 0, 64);
	note(a, 0, 1, 1, 64); /* queues 2, 3, 4; 2 is taken */
	CHECK(until_taken());
	for (uint64_t b = 2; b < 6; b++) /* the reader reads 2 to 5 itself */
		note(a, 0, b, b, 64);
	gate(false);
	tpfs_ahead_wait(a);
	bool twice;
	CHECKF(made_set(0, &twice) == range(2, 3), "made %#llx",
	       (unsigned long long)made_set(0, &twice));
	CHECK(tpfs_ahead_made(a) == 1);
	tpfs_ahead_destroy(a);
}

static void destroy_waits_for_blocks_being_made(void)
{
	struct tpfs_ahead *a = create(1, 1, 1, 4);
	if (!a)
		return;
	atomic_store(&slow_ms, 100);
	note(a, 0, 0, 0, 8);
	note(a, 0, 1, 1, 8); /* two reads: queues block 2 */
	CHECK(until_taken());
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
	RUN(blocks_their_reader_reached_first_are_dropped);
	RUN(destroy_waits_for_blocks_being_made);
	tpfs_ahead_destroy(NULL);
	return check_done();
}
