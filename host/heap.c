#include "heap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "bigmem.h"

/* Small blocks (most of Lua's: tables, strings, closures, table parts) come from
 * slabs of one size class each (classes POOL_STEP bytes apart): malloc alone spent
 * a fifth of a long run's time walking its bins (a heap of 100,000 tests' records,
 * fragmented by the collector). Lua tells the size of every block it frees or
 * resizes, so a block needs no header: its slab is found by aligning its address
 * down, and taking a block is a pop off its slab's list of freed ones. A slab whose
 * blocks are all free again (but the last one of its class) is free for any class
 * to take, and when more than half of all slabs are such spares the pages of all
 * but 4 MiB of them go back to the system: memory a test filled and let go is not
 * kept for one size, nor for the pool alone.
 * Slabs are cut from 2 MiB chunks on huge-page boundaries (mmap; from the third
 * on, asking for transparent huge pages: one page fault per chunk where the kernel
 * gives them, and a small run does not hold 2 MiB for a few blocks).
 * Off in the sanitizer build and under valgrind, whose checks see malloc's blocks
 * only. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0
#else
#define POOL_MAX 512
#endif
#define POOL_STEP 16
#define POOL_CLASSES (POOL_MAX / POOL_STEP + 1)
#define SLAB ((size_t)64 << 10)       /* its size and its alignment */
#define CHUNK ((size_t)2 << 20)       /* what is mapped at once: SLAB-sized slabs */
#define SMALL_CHUNKS 2                /* the chunks mapped without huge pages */
#define SPARES_KEPT 64                /* empty slabs kept with their pages (4 MiB) */
#define READY_STEP ((size_t)16 << 10) /* a slab's pages are populated this many at a time */

typedef struct slab {
    struct slab *prev, *next; /* in its class's list of slabs with room */
    void *free;               /* its freed blocks, each one's first word the next */
    char *fresh;              /* its blocks never handed out yet, from here to its end */
    char *ready;              /* its pages are populated up to here (bigmem_populate) */
    unsigned live;            /* blocks handed out */
    bool listed;
} slab;
#define SLAB_HEAD ((sizeof(slab) + POOL_STEP - 1) / POOL_STEP * POOL_STEP)

static struct {
    slab *room[POOL_CLASSES];  /* by class: the slabs with a block to give */
    void *spare;               /* empty slabs of no class, each one's first word the next */
    void *given_back;          /* the same, whose pages went back to the system */
    char *unused, *unused_end; /* the last chunk's slabs never used yet */
    unsigned spares, chunks;   /* in spare; chunks mapped so far */
    int on;                    /* 1: in use, 0: not decided yet, -1: off (valgrind) */
} pool;

/* An empty slab: a spare one (*resident: its pages as its last use left them, its
 * header's ready mark still true), else one whose pages went back, else one never
 * used (the next of the last chunk mapped, or of a new chunk). A chunk's slabs are
 * not linked as spares when it is mapped: writing a link into each would fault in
 * a page of each. */
static void *new_slab(bool *resident)
{
    void *s;
    *resident = pool.spare != NULL;
    if (pool.spare) {
        s = pool.spare;
        pool.spare = *(void **)s;
        pool.spares--;
        return s;
    }
    if (pool.given_back) {
        s = pool.given_back;
        pool.given_back = *(void **)s;
    } else {
        if (pool.unused == pool.unused_end) {
            char *p = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
            char *a = (char *)(((uintptr_t)p + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
            if (a > p)
                munmap(p, (size_t)(a - p));
            munmap(a + CHUNK, (size_t)(p + CHUNK - a));
            if (++pool.chunks > SMALL_CHUNKS) /* a small run stays small: 2 MiB resident for a few blocks */
                madvise(a, CHUNK, MADV_HUGEPAGE);
            pool.unused = a;
            pool.unused_end = a + CHUNK;
        }
        s = pool.unused;
        pool.unused += SLAB;
    }
    return s;
}

/* An empty slab becomes a spare. When more than half of all slabs are spares (a
 * test filled memory with small objects and let it go), the pages of all but
 * SPARES_KEPT of them go back to the system (their addresses stay ours): that
 * memory is then there for malloc's blocks too. The collector's everyday garbage
 * never comes near half, so its slabs are taken again without a page fault. */
static void drop_slab(slab *s)
{
    *(void **)s = pool.spare;
    pool.spare = s;
    pool.spares++;
    if (pool.spares <= SPARES_KEPT || pool.spares <= pool.chunks * (CHUNK / SLAB) / 2)
        return;
    while (pool.spares > SPARES_KEPT) {
        void *x = pool.spare;
        pool.spare = *(void **)x;
        pool.spares--;
        madvise(x, SLAB, MADV_DONTNEED);
        *(void **)x = pool.given_back;
        pool.given_back = x;
    }
}

static inline size_t pool_class(size_t n) { return (n + POOL_STEP - 1) / POOL_STEP; }

static void unlist(slab *s, size_t c)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        pool.room[c] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->listed = false;
}

static void list(slab *s, size_t c)
{
    s->prev = NULL;
    s->next = pool.room[c];
    if (s->next)
        s->next->prev = s;
    pool.room[c] = s;
    s->listed = true;
}

static void *pool_get(size_t n)
{
    size_t c = pool_class(n), size = c * POOL_STEP;
    slab *s = pool.room[c];
    if (!s) {
        bool resident;
        s = new_slab(&resident);
        if (!s)
            return NULL;
        char *ready = resident ? s->ready : NULL; /* a spare's pages are populated again only past it */
        if (!ready) {
            bigmem_populate(s, READY_STEP);
            ready = (char *)s + READY_STEP;
        }
        memset(s, 0, sizeof *s);
        s->fresh = (char *)s + SLAB_HEAD;
        s->ready = ready;
        list(s, c);
    }
    void *b;
    if (s->free) {
        b = s->free;
        s->free = *(void **)b;
    } else {
        b = s->fresh;
        s->fresh += size;
        if (s->fresh > s->ready) { /* the next pages of the slab, in one call */
            bigmem_populate(s->ready, READY_STEP);
            s->ready += READY_STEP;
        }
    }
    s->live++;
    if (!s->free && (size_t)((char *)s + SLAB - s->fresh) < size)
        unlist(s, c); /* full */
    return b;
}

static void pool_put(void *b, size_t n)
{
    size_t c = pool_class(n);
    slab *s = (slab *)((uintptr_t)b & ~(uintptr_t)(SLAB - 1));
    *(void **)b = s->free;
    s->free = b;
    s->live--;
    if (!s->listed)
        list(s, c);
    if (s->live == 0 && (s->prev || s->next)) { /* empty, and not its class's last: a spare */
        unlist(s, c);
        drop_slab(s);
    }
}

static bool pool_on(void)
{
    if (!pool.on)
        pool.on = RUNNING_ON_VALGRIND ? -1 : 1;
    return pool.on > 0;
}

/* The first pages of a big block Lua has just been given (or of what it grew by),
 * at most POPULATE_MAX: a string, a table's parts or a vector are written whole as
 * they are made, but a buffer reserved for a read (f:read(n), luaL_Buffer) may be
 * written in its first bytes only, and no more than this is filled in for it. */
#define POPULATE_MAX ((size_t)2 << 20)
static void populate_some(char *p, size_t n) { bigmem_populate(p, n < POPULATE_MAX ? n : POPULATE_MAX); }

/* realloc over the pool (blocks up to POOL_MAX) and bigmem (the rest). */
static void *block_realloc(void *ptr, size_t old, size_t nsize)
{
    bool small_old = ptr && old <= POOL_MAX, small_new = nsize && nsize <= POOL_MAX;
    if ((!small_old && !small_new) || !pool_on()) {
        void *np = bigmem_realloc(ptr, old, nsize);
        if (np && nsize > old && nsize >= BIGMEM_THRESHOLD)
            populate_some((char *)np + old, nsize - old);
        return np;
    }
    if (small_old && small_new && pool_class(old) == pool_class(nsize))
        return ptr;
    void *np = NULL;
    if (nsize) {
        np = small_new ? pool_get(nsize) : bigmem_realloc(NULL, 0, nsize);
        if (np && !small_new && nsize >= BIGMEM_THRESHOLD)
            populate_some(np, nsize);
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
    size_t dropping; /* after heap_exiting: how many more bytes a free may drop */
} heap;

#define DROP_MAX ((size_t)256 << 20) /* a finalizer that makes garbage in a loop is still freed after */

void heap_exiting(void)
{
    if (POOL_MAX > 0 && pool_on())
        heap.dropping = DROP_MAX;
}

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
    if (nsize == 0 && ptr && heap.dropping >= old) {
        heap.dropping -= old;
        heap.used -= old;
        return NULL;
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
