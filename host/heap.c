#include "heap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"

/* Small blocks (most of Lua's: tables, strings, closures, table parts) come from
 * a pool of size classes, POOL_STEP bytes apart: each class a LIFO list of freed
 * blocks, new ones carved from SLAB-sized chunks of malloc. Lua tells the size of
 * every block it frees or resizes, so a block needs no header, and taking one is
 * a pop off its list. malloc alone spent a fifth of a long run's time walking its
 * bins (a heap of 100,000 tests' records, fragmented by the collector). The pool
 * keeps what it has carved for the life of the process (a freed block serves the
 * next of its class). The sanitizer build uses malloc for every block, so that
 * ASan still checks each one. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0
#else
#define POOL_MAX 512
#endif
#define POOL_STEP 16
#define SLAB ((size_t)64 << 10)

static struct {
    void *free[POOL_MAX / POOL_STEP + 1]; /* by class: the first freed block (its first word: the next) */
    char *cur, *end;                      /* what is left of the slab being carved */
    void *slabs;                          /* every slab, linked through its first word */
} pool;

static inline size_t pool_class(size_t n) { return (n + POOL_STEP - 1) / POOL_STEP; }

static void *pool_get(size_t n)
{
    size_t c = pool_class(n);
    void **b = pool.free[c];
    if (b) {
        pool.free[c] = *b;
        return b;
    }
    size_t sz = c * POOL_STEP;
    if ((size_t)(pool.end - pool.cur) < sz) {
        char *s = malloc(SLAB);
        if (!s)
            return NULL;
        if (pool.end > pool.cur) { /* the old slab's rest (a multiple of POOL_STEP): a block of its class */
            void **rest = (void **)pool.cur;
            size_t rc = (size_t)(pool.end - pool.cur) / POOL_STEP;
            *rest = pool.free[rc];
            pool.free[rc] = rest;
        }
        *(void **)s = pool.slabs;
        pool.slabs = s;
        pool.cur = s + POOL_STEP;
        pool.end = s + SLAB;
    }
    void *p = pool.cur;
    pool.cur += sz;
    return p;
}

static void pool_put(void *p, size_t n)
{
    size_t c = pool_class(n);
    *(void **)p = pool.free[c];
    pool.free[c] = p;
}

/* realloc over the pool (blocks up to POOL_MAX) and bigmem (the rest). */
static void *block_realloc(void *ptr, size_t old, size_t nsize)
{
    bool small_old = ptr && old <= POOL_MAX, small_new = nsize && nsize <= POOL_MAX;
    if (!small_old && !small_new)
        return bigmem_realloc(ptr, old, nsize);
    if (small_old && small_new && pool_class(old) == pool_class(nsize))
        return ptr;
    void *np = NULL;
    if (nsize) {
        np = small_new ? pool_get(nsize) : bigmem_realloc(NULL, 0, nsize);
        if (!np)
            return NULL;
        if (ptr)
            memcpy(np, ptr, old < nsize ? old : nsize);
    }
    if (ptr) {
        if (small_old)
            pool_put(ptr, old);
        else
            bigmem_realloc(ptr, old, 0);
    }
    return np;
}

static struct {
    size_t used, limit;
    void *donor; /* heap_donate's block, until taken */
    size_t donor_size, donor_nsize;
    int donor_tag, probe_tag;
    size_t probed;
    int taken;
} heap;

void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    const heap_policy *policy = ud;
    size_t old = ptr ? osize : 0;
    if (nsize > old && heap.limit && heap.used - old + nsize > heap.limit && policy && policy->enforce &&
        policy->enforce()) {
        heap.donor = NULL;
        return NULL;
    }
    if (!ptr && heap.probe_tag && (int)osize == heap.probe_tag) {
        heap.probed = nsize;
        heap.probe_tag = 0;
    }
    if (!ptr && heap.donor && (int)osize == heap.donor_tag && nsize == heap.donor_nsize && nsize > POOL_MAX) {
        void *np = bigmem_realloc(heap.donor, heap.donor_size, nsize); /* shrinks in place */
        heap.donor = NULL;
        if (np) {
            heap.taken = 1;
            heap.used += nsize;
        }
        return np;
    }
    void *np = block_realloc(ptr, old, nsize);
    if (np || nsize == 0)
        heap.used = heap.used - old + nsize;
    return np;
}

void heap_set_limit(size_t bytes) { heap.limit = bytes; }
size_t heap_limit(void) { return heap.limit; }

void heap_donate(void *block, size_t block_size, size_t nsize, int tag)
{
    heap.donor = block;
    heap.donor_size = block_size;
    heap.donor_nsize = nsize;
    heap.donor_tag = tag;
    heap.taken = 0;
}

int heap_donate_end(void)
{
    heap.donor = NULL;
    return heap.taken;
}

void heap_probe(int tag)
{
    heap.probe_tag = tag;
    heap.probed = 0;
}

size_t heap_probe_end(void)
{
    heap.probe_tag = 0;
    return heap.probed;
}
