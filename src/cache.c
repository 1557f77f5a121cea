/*
 * Block cache: a chained hash table of entries, an LRU list holding the
 * unpinned READY entries (the eviction candidates), and one condition
 * variable on which readers wait for fills in flight.
 */
#include "tpfs/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

enum state { LOADING, READY, FAILED };

struct tpfs_cache_block {
	struct tpfs_cache_key key;
	uint64_t hash;
	struct tpfs_cache_block *hnext;        /* hash chain */
	struct tpfs_cache_block *prev, *next;  /* LRU list, when unpinned and READY */
	void *data;
	size_t len;
	size_t cap;                            /* allocated bytes of data */
	unsigned refs;
	enum state state;
	int err;
};

struct tpfs_cache {
	pthread_mutex_t lock;
	pthread_cond_t filled;                 /* broadcast when a fill ends */
	struct tpfs_cache_block **buckets;     /* lock */
	size_t mask;
	struct tpfs_cache_block lru;           /* lock; head.next is most recent */
	uint64_t capacity;
	uint64_t used;                         /* lock */
	uint64_t blocks;                       /* lock */
	uint64_t hits, misses, evictions, fill_errors; /* lock */
};

static size_t cost(size_t cap)
{
	return cap + sizeof(struct tpfs_cache_block);
}

/* Blocks of at least MAPPED bytes get pages of their own (mmap), which go
 * back to the system as soon as the block is freed. From the C library's
 * heaps, freed blocks stayed in the arena of whichever thread had made
 * them, and the daemon's memory drifted above the capacity as readers and
 * read-ahead threads made blocks in turn (311 MiB at the end of a long
 * benchmark with a 256 MiB cache). Smaller ones (a tensor's last block,
 * small tensors) come from malloc: a mapping each would run into the
 * kernel's limit on mappings per process. */
#define MAPPED ((size_t)64 << 10)

/* The bytes a block of len bytes takes: whole pages when mapped. */
static size_t cap_for(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return len < MAPPED ? (len ? len : 1) : (len + page - 1) / page * page;
}

static void *data_alloc(size_t cap)
{
	if (cap < MAPPED)
		return malloc(cap);
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

struct tpfs_cache *tpfs_cache_create(uint64_t capacity)
{
	struct tpfs_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	size_t nb = 1024;
	while (nb < (1u << 20) && nb < capacity / (64 << 10))
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->mask = nb - 1;
	c->capacity = capacity;
	c->lru.next = c->lru.prev = &c->lru;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->filled, NULL);
	return c;
}

static void free_block(struct tpfs_cache_block *b)
{
	if (b) {
		if (b->cap < MAPPED)
			free(b->data);
		else if (b->data)
			munmap(b->data, b->cap);
		free(b);
	}
}

void tpfs_cache_destroy(struct tpfs_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i <= c->mask; i++) {
		struct tpfs_cache_block *b = c->buckets[i];
		while (b) {
			struct tpfs_cache_block *n = b->hnext;
			free_block(b);
			b = n;
		}
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->filled);
	free(c);
}

static void lru_unlink(struct tpfs_cache_block *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
	b->prev = b->next = NULL;
}

static void lru_push(struct tpfs_cache *c, struct tpfs_cache_block *b)
{
	b->next = c->lru.next;
	b->prev = &c->lru;
	c->lru.next->prev = b;
	c->lru.next = b;
}

static void table_remove(struct tpfs_cache *c, struct tpfs_cache_block *b)
{
	struct tpfs_cache_block **p = &c->buckets[b->hash & c->mask];
	while (*p != b)
		p = &(*p)->hnext;
	*p = b->hnext;
	b->hnext = NULL;
	c->used -= cost(b->cap);
	c->blocks--;
}

static struct tpfs_cache_block *table_find(struct tpfs_cache *c, uint64_t h,
					   const struct tpfs_cache_key *k)
{
	for (struct tpfs_cache_block *b = c->buckets[h & c->mask]; b; b = b->hnext)
		if (b->hash == h && memcmp(&b->key, k, sizeof(*k)) == 0)
			return b;
	return NULL;
}

/* Evict least-recently-used blocks until `need` more bytes fit. Evicted
 * blocks are chained on *dead for the caller to free (or reuse) after
 * unlocking. */
static void evict(struct tpfs_cache *c, size_t need, struct tpfs_cache_block **dead)
{
	while (c->used + need > c->capacity && c->lru.prev != &c->lru) {
		struct tpfs_cache_block *v = c->lru.prev;
		lru_unlink(v);
		table_remove(c, v);
		c->evictions++;
		v->hnext = *dead;
		*dead = v;
	}
}

/* Take from the evicted chain a block whose buffer has len bytes, free the
 * rest. */
static struct tpfs_cache_block *recycle(struct tpfs_cache_block *dead, size_t len)
{
	struct tpfs_cache_block *keep = NULL;
	while (dead) {
		struct tpfs_cache_block *n = dead->hnext;
		/* The same size only: room was made for cost(cap_for(len)). */
		if (!keep && dead->cap == cap_for(len))
			keep = dead;
		else
			free_block(dead);
		dead = n;
	}
	return keep;
}

/* With the lock held, a hit: pin b, wait for its fill, then unlock. A
 * failed fill is out of the table already; its last holder frees it. */
static int take_hit(struct tpfs_cache *c, struct tpfs_cache_block *b,
		    struct tpfs_cache_block **out)
{
	c->hits++;
	if (b->refs++ == 0 && b->state == READY)
		lru_unlink(b);
	while (b->state == LOADING)
		pthread_cond_wait(&c->filled, &c->lock);
	int rc = b->state == READY ? 0 : b->err;
	bool last = rc < 0 && --b->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		free_block(b);
	if (rc == 0)
		*out = b;
	return rc;
}

int tpfs_cache_get(struct tpfs_cache *c, const struct tpfs_cache_key *key,
		   size_t len, tpfs_fill_fn fill, void *ctx,
		   struct tpfs_cache_block **out)
{
	uint64_t h = XXH3_64bits(key, sizeof(*key));
	struct tpfs_cache_block *dead = NULL;

	pthread_mutex_lock(&c->lock);
	struct tpfs_cache_block *b = table_find(c, h, key);
	if (b)
		return take_hit(c, b, out);
	c->misses++;
	evict(c, cost(cap_for(len)), &dead);
	pthread_mutex_unlock(&c->lock);

	/* Allocate and fill outside the lock. */
	b = recycle(dead, len);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (b) {
			b->cap = cap_for(len);
			b->data = data_alloc(b->cap);
		}
		if (!b || !b->data) {
			free_block(b);
			return -ENOMEM;
		}
	}
	b->key = *key;
	b->hash = h;
	b->len = len;
	b->refs = 1;
	b->state = LOADING;
	b->hnext = b->prev = b->next = NULL;

	pthread_mutex_lock(&c->lock);
	struct tpfs_cache_block *racer = table_find(c, h, key);
	if (racer) {
		/* Another reader started the same block while we were unlocked. */
		c->misses--;
		free_block(b);
		return take_hit(c, racer, out);
	}
	size_t slot = h & c->mask;
	b->hnext = c->buckets[slot];
	c->buckets[slot] = b;
	c->used += cost(b->cap);
	c->blocks++;
	pthread_mutex_unlock(&c->lock);

	int rc = fill(ctx, b->data, len);

	pthread_mutex_lock(&c->lock);
	if (rc == 0) {
		b->state = READY;
	} else {
		b->state = FAILED;
		b->err = rc;
		c->fill_errors++;
		table_remove(c, b);
	}
	pthread_cond_broadcast(&c->filled);
	bool last = rc < 0 && --b->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (rc < 0) {
		if (last)
			free_block(b);
		return rc;
	}
	*out = b;
	return 0;
}

bool tpfs_cache_holds(struct tpfs_cache *c, const struct tpfs_cache_key *key)
{
	uint64_t h = XXH3_64bits(key, sizeof(*key));
	pthread_mutex_lock(&c->lock);
	bool held = table_find(c, h, key) != NULL;
	pthread_mutex_unlock(&c->lock);
	return held;
}

const void *tpfs_cache_data(const struct tpfs_cache_block *b)
{
	return b->data;
}

void tpfs_cache_put(struct tpfs_cache *c, struct tpfs_cache_block *b)
{
	struct tpfs_cache_block *dead = NULL;
	pthread_mutex_lock(&c->lock);
	if (--b->refs == 0) {
		lru_push(c, b);
		evict(c, 0, &dead);
	}
	pthread_mutex_unlock(&c->lock);
	while (dead) {
		struct tpfs_cache_block *n = dead->hnext;
		free_block(dead);
		dead = n;
	}
}

void tpfs_cache_get_stats(struct tpfs_cache *c, struct tpfs_cache_stats *s)
{
	pthread_mutex_lock(&c->lock);
	s->hits = c->hits;
	s->misses = c->misses;
	s->evictions = c->evictions;
	s->fill_errors = c->fill_errors;
	s->used = c->used;
	s->capacity = c->capacity;
	s->blocks = c->blocks;
	pthread_mutex_unlock(&c->lock);
}
