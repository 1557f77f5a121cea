/*
 * The block cache: LRU eviction, pinned blocks never freed, one fill for
 * concurrent readers of a missing block, failed fills not cached, and a
 * multi-threaded stress with a cache much smaller than the working set in
 * which every block read must hold the bytes of its own key.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tpfs/cache.h"

#define BLK 65536
#define SLACK 1024 /* bookkeeping per block, generously */

static atomic_int fills;
static atomic_int fill_delay_ms;
static atomic_int fail_next;
static atomic_int in_fill; /* fills started and not yet returned */

static struct tpfs_cache_key key_of(uint64_t block)
{
	struct tpfs_cache_key k;
	memset(&k, 0, sizeof(k));
	k.src[0].dev = 1;
	k.src[0].ino = 42;
	k.src[0].size = 1000;
	k.src[0].offset = 8;
	k.block = block;
	k.conv = 1;
	return k;
}

static unsigned char pattern(uint64_t block, size_t i)
{
	return (unsigned char)(block * 31 + i * 7);
}

static int fill(void *ctx, void *dst, size_t len)
{
	uint64_t block = *(uint64_t *)ctx;
	atomic_fetch_add(&fills, 1);
	atomic_fetch_add(&in_fill, 1);
	int ms = atomic_load(&fill_delay_ms);
	if (ms) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	int rc = 0;
	if (atomic_exchange(&fail_next, 0))
		rc = -EIO;
	for (size_t i = 0; i < len && rc == 0; i++)
		((unsigned char *)dst)[i] = pattern(block, i);
	atomic_fetch_sub(&in_fill, 1);
	return rc;
}

static struct tpfs_cache_block *get(struct tpfs_cache *c, uint64_t block, int *rc)
{
	struct tpfs_cache_key k = key_of(block);
	struct tpfs_cache_block *b = NULL;
	*rc = tpfs_cache_get(c, &k, BLK, fill, &block, &b);
	return b;
}

static bool holds(const struct tpfs_cache_block *b, uint64_t block)
{
	const unsigned char *d = tpfs_cache_data(b);
	for (size_t i = 0; i < BLK; i += 61)
		if (d[i] != pattern(block, i))
			return false;
	return d[BLK - 1] == pattern(block, BLK - 1);
}

/* Get and put at once; returns whether a fill ran. */
static bool touch(struct tpfs_cache *c, uint64_t block)
{
	int before = atomic_load(&fills), rc;
	struct tpfs_cache_block *b = get(c, block, &rc);
	CHECK(rc == 0 && b && holds(b, block));
	if (b)
		tpfs_cache_put(c, b);
	return atomic_load(&fills) != before;
}

static void least_recently_used_block_is_evicted_first(void)
{
	struct tpfs_cache *c = tpfs_cache_create(3 * (BLK + SLACK));
	CHECK(touch(c, 0));
	CHECK(touch(c, 1));
	CHECK(touch(c, 2));
	CHECK(!touch(c, 0)); /* 0 is now the most recent; 1 the least */
	CHECK(touch(c, 3));  /* evicts 1 */
	CHECK(!touch(c, 0));
	CHECK(!touch(c, 2));
	CHECK(!touch(c, 3));
	CHECK(touch(c, 1)); /* gone, converted again */
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.evictions == 2); /* 1, then 0 to make room for 1 again */
	CHECK(s.blocks == 3 && s.used <= s.capacity);
	CHECK(s.misses == 5 && s.hits == 4);
	tpfs_cache_destroy(c);
}

static void pinned_blocks_are_never_evicted(void)
{
	struct tpfs_cache *c = tpfs_cache_create(BLK + SLACK); /* room for one */
	int rc;
	struct tpfs_cache_block *a = get(c, 10, &rc);
	struct tpfs_cache_block *b = get(c, 11, &rc);
	struct tpfs_cache_block *d = get(c, 12, &rc);
	CHECK(a && b && d);
	/* All three stay readable while pinned, past the capacity. */
	CHECK(holds(a, 10) && holds(b, 11) && holds(d, 12));
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.blocks == 3 && s.used > s.capacity);
	tpfs_cache_put(c, a);
	tpfs_cache_put(c, b);
	tpfs_cache_put(c, d);
	tpfs_cache_get_stats(c, &s);
	CHECK(s.used <= s.capacity && s.blocks == 1);
	tpfs_cache_destroy(c);
}

/* A new block makes room before it is filled: with three unpinned blocks
 * in a cache for three, the fourth evicts one while it is still pinned. */
static void a_new_block_makes_room_at_once(void)
{
	struct tpfs_cache *c = tpfs_cache_create(3 * (BLK + SLACK));
	for (uint64_t i = 0; i < 3; i++)
		CHECK(touch(c, i));
	int rc;
	struct tpfs_cache_block *b = get(c, 3, &rc);
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(b && s.evictions == 1 && s.blocks == 3 && s.used <= s.capacity);
	if (b)
		tpfs_cache_put(c, b);
	tpfs_cache_destroy(c);
}

static void zero_capacity_still_serves_every_read(void)
{
	struct tpfs_cache *c = tpfs_cache_create(0);
	CHECK(touch(c, 5));
	CHECK(touch(c, 5));
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.blocks == 0 && s.used == 0);
	tpfs_cache_destroy(c);
}

struct racer {
	struct tpfs_cache *c;
	uint64_t block;
	bool ok;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	int rc;
	struct tpfs_cache_block *b = get(r->c, r->block, &rc);
	r->ok = rc == 0 && b && holds(b, r->block);
	if (b)
		tpfs_cache_put(r->c, b);
	return NULL;
}

static void concurrent_readers_of_a_missing_block_convert_it_once(void)
{
	struct tpfs_cache *c = tpfs_cache_create(64 * (BLK + SLACK));
	atomic_store(&fills, 0);
	atomic_store(&fill_delay_ms, 50);
	pthread_t th[8];
	struct racer r[8];
	for (int i = 0; i < 8; i++) {
		r[i] = (struct racer){c, 77, false};
		pthread_create(&th[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CHECK(r[i].ok);
	}
	atomic_store(&fill_delay_ms, 0);
	CHECK(atomic_load(&fills) == 1);
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.misses == 1 && s.hits == 7);
	tpfs_cache_destroy(c);
}

/* holds: absent blocks stay absent (no fill), and held or in-flight
 * blocks are seen, counted neither as hits nor as misses. */
static void holds_never_fills_and_sees_a_fill_in_flight(void)
{
	struct tpfs_cache *c = tpfs_cache_create(8 * (BLK + SLACK));
	struct tpfs_cache_key k = key_of(5);
	int before = atomic_load(&fills);
	CHECK(!tpfs_cache_holds(c, &k));
	CHECK(atomic_load(&fills) == before);
	CHECK(touch(c, 5));
	CHECK(tpfs_cache_holds(c, &k));
	/* a fill of 300 ms on another thread, seen while in flight */
	atomic_store(&fill_delay_ms, 300);
	pthread_t th;
	struct racer r = {c, 6, false};
	pthread_create(&th, NULL, race, &r);
	struct tpfs_cache_key k6 = key_of(6);
	bool seen = false;
	for (int i = 0; i < 5000 && !seen; i++) {
		seen = tpfs_cache_holds(c, &k6);
		if (!seen) {
			struct timespec ts = {0, 100000L};
			nanosleep(&ts, NULL);
		}
	}
	CHECK(seen && atomic_load(&in_fill) == 1); /* seen before 6's fill returned */
	pthread_join(th, NULL);
	atomic_store(&fill_delay_ms, 0);
	CHECK(r.ok);
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.misses == 2 && s.hits == 0 && s.blocks == 2);
	tpfs_cache_destroy(c);
}

static void failed_fill_reaches_every_waiter_and_is_not_cached(void)
{
	struct tpfs_cache *c = tpfs_cache_create(8 * (BLK + SLACK));
	atomic_store(&fills, 0);
	atomic_store(&fail_next, 1);
	atomic_store(&fill_delay_ms, 50);
	pthread_t th[4];
	struct racer r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct racer){c, 3, true};
		pthread_create(&th[i], NULL, race, &r[i]);
	}
	int failed = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		failed += !r[i].ok;
	}
	atomic_store(&fill_delay_ms, 0);
	/* Readers that arrived during the failing fill share its error; any
	 * that came after it converted the block again. */
	CHECK(failed >= 1);
	CHECK(atomic_load(&fills) >= 1 && atomic_load(&fills) <= 1 + (4 - failed));
	int rc;
	struct tpfs_cache_block *b = get(c, 3, &rc);
	CHECK(rc == 0 && b && holds(b, 3));
	if (b)
		tpfs_cache_put(c, b);
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.fill_errors == 1);
	tpfs_cache_destroy(c);
}

struct stress {
	struct tpfs_cache *c;
	unsigned seed;
	int bad;
	int gets;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	for (int i = 0; i < 2000; i++) {
		uint64_t block = (uint64_t)(rand_r(&s->seed) % 200);
		int rc;
		struct tpfs_cache_block *b = get(s->c, block, &rc);
		s->gets++;
		if (rc != 0 || !b || !holds(b, block)) {
			s->bad++;
			continue;
		}
		/* Hold some blocks a little while others evict around them. */
		if (rand_r(&s->seed) % 8 == 0)
			sched_yield();
		if (!holds(b, block))
			s->bad++;
		tpfs_cache_put(s->c, b);
	}
	return NULL;
}

static void stress_with_a_cache_smaller_than_the_working_set(void)
{
	struct tpfs_cache *c = tpfs_cache_create(20 * (BLK + SLACK));
	pthread_t th[8];
	struct stress st[8];
	for (int i = 0; i < 8; i++) {
		st[i] = (struct stress){c, (unsigned)i * 7919u + 1, 0, 0};
		pthread_create(&th[i], NULL, stress_thread, &st[i]);
	}
	int bad = 0, gets = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		bad += st[i].bad;
		gets += st[i].gets;
	}
	CHECK(bad == 0);
	struct tpfs_cache_stats s;
	tpfs_cache_get_stats(c, &s);
	CHECK(s.hits + s.misses == (uint64_t)gets);
	CHECK(s.evictions > 0 && s.misses > 200);
	CHECK(s.used <= s.capacity && s.blocks <= 20);
	tpfs_cache_destroy(c);
}

int main(void)
{
	RUN(least_recently_used_block_is_evicted_first);
	RUN(pinned_blocks_are_never_evicted);
	RUN(a_new_block_makes_room_at_once);
	RUN(zero_capacity_still_serves_every_read);
	RUN(concurrent_readers_of_a_missing_block_convert_it_once);
	RUN(holds_never_fills_and_sees_a_fill_in_flight);
	RUN(failed_fill_reaches_every_waiter_and_is_not_cached);
	RUN(stress_with_a_cache_smaller_than_the_working_set);
	return check_done();
}
