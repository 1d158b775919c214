/* Unit tests of heap.c (the Lua heap) without Lua: blocks are aligned for any
 * object and keep their contents across moves between size classes and to big
 * blocks; memory freed in one size class is taken again by another (a test that
 * fills the heap with one kind of object and lets it go leaves no memory that
 * only that kind can use); the --max-memory limit refuses growth past it. */
#include "heap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "check.h"

static int enforce_always(void) { return 1; }
static const heap_policy enforced = {enforce_always};

static void *h_alloc(size_t n) { return heap_alloc(NULL, NULL, 5 /* a type tag, as Lua passes */, n); }
static void *h_resize(void *p, size_t o, size_t n) { return heap_alloc(NULL, p, o, n); }
static void h_free(void *p, size_t n) { heap_alloc(NULL, p, n, 0); }

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31 + i))
            return 0;
    return 1;
}

/* Random sizes from 1 byte to 2 KiB, resized at random, across every class and past
 * the small blocks: each aligned to 16 and holding what was written. */
static void test_align_and_contents(void)
{
    enum { N = 4000 };
    static unsigned char *blk[N];
    static size_t len[N];
    unsigned misaligned = 0, damaged = 0;
    srand(7);
    for (int i = 0; i < N; i++) {
        len[i] = (size_t)(rand() % 2048) + 1;
        blk[i] = h_alloc(len[i]);
        CHECK(blk[i] != NULL);
        misaligned += ((uintptr_t)blk[i] & 15) != 0;
        fill(blk[i], len[i], (unsigned)i);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)(rand() % 2048) + 1;
            unsigned char *p = h_resize(blk[i], len[i], n);
            CHECK(p != NULL);
            damaged += !intact(p, len[i] < n ? len[i] : n, (unsigned)i);
            misaligned += ((uintptr_t)p & 15) != 0;
            blk[i] = p;
            len[i] = n;
            fill(p, n, (unsigned)i);
        }
        for (int i = 0; i < N; i += 2) { /* half freed and taken again */
            h_free(blk[i], len[i]);
            blk[i] = h_alloc(len[i]);
            fill(blk[i], len[i], (unsigned)i);
        }
    }
    for (int i = 0; i < N; i++) {
        damaged += !intact(blk[i], len[i], (unsigned)i);
        h_free(blk[i], len[i]);
    }
    CHECK(misaligned == 0);
    CHECK(damaged == 0);
}

/* A small run stays small: a block of each size class populates (heap.c) the first
 * pages of its class's slab, not the whole 64 KiB of it; 32 classes holding a
 * block each take well under the 2 MiB whole slabs would. Run first, on a fresh
 * heap. */
static void test_small_stays_small(void)
{
    void *blk[32];
    long before = rss_kb();
    for (int i = 0; i < 32; i++) {
        blk[i] = h_alloc((size_t)(i + 1) * 16);
        CHECK(blk[i] != NULL);
        memset(blk[i], 1, (size_t)(i + 1) * 16);
    }
    long grown = rss_kb() - before;
    for (int i = 0; i < 32; i++)
        h_free(blk[i], (size_t)(i + 1) * 16);
    /* where every mapping gets huge pages (THP "always") a first touch brings 2 MiB in,
     * populated or not: nothing to tell there */
    char thp[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(thp, sizeof thp, f))
            thp[0] = 0;
        fclose(f);
    }
    if (strstr(thp, "[always]"))
        return;
    long page_kb = sysconf(_SC_PAGESIZE) / 1024, limit = 32 * (page_kb > 16 ? page_kb : 16) + 512;
    if (grown >= limit)
        fprintf(stderr, "a block of each class grew the process by %ld KiB\n", grown);
    CHECK(grown < limit);
}

/* Big blocks (from 1 MiB, bigmem.c) start on 2 MiB boundaries and keep their
 * contents as they grow; a freed one is kept and given again, to one block at a
 * time: two live blocks never share memory. A kept mapping cut to a smaller block
 * gives its tail back (that range is no longer mapped). */
static void test_big_blocks(void)
{
    const size_t M = (size_t)1 << 20;
    /* first, while nothing is kept: a kept 2 MiB mapping (where the build keeps them)
     * cut for 1.25 MiB, the rest unmapped */
    unsigned char *big = h_alloc(2 * M);
    CHECK(big != NULL);
    fill(big, 2 * M, 5);
    h_free(big, 2 * M);
    unsigned char *cut = h_alloc(5 * M / 4);
    CHECK(cut != NULL);
    fill(cut, 5 * M / 4, 6);
    CHECK(intact(cut, 5 * M / 4, 6));
    if (cut == big) {
        unsigned char v;
        CHECK(mincore(big + 3 * M / 2, (size_t)sysconf(_SC_PAGESIZE), &v) != 0); /* not mapped any more */
    }
    h_free(cut, 5 * M / 4);
    /* then ten 2 MiB blocks, all live, then all freed: what is kept stays bounded
     * (4 MiB, of which the cut one above; with no bound 4 slots would keep 7.25) */
    unsigned char *ten[10];
    long before = rss_kb();
    for (int i = 0; i < 10; i++) {
        ten[i] = h_alloc(2 * M);
        CHECK(ten[i] != NULL);
        memset(ten[i], 7, 2 * M);
    }
    for (int i = 0; i < 10; i++)
        h_free(ten[i], 2 * M);
    long after = rss_kb() - before;
    if (after >= 9 * 512)
        fprintf(stderr, "freed big blocks left the process %ld KiB bigger\n", after);
    CHECK(after < 9 * 512);
    unsigned char *a = h_alloc(3 * M);
    CHECK(a && ((uintptr_t)a & (2 * M - 1)) == 0);
    fill(a, 3 * M, 1);
    h_free(a, 3 * M);
    unsigned char *b = h_alloc(3 * M), *c = h_alloc(3 * M); /* b: a's mapping again, at most once */
    CHECK(b && c && b != c);
    CHECK(((uintptr_t)b & (2 * M - 1)) == 0 && ((uintptr_t)c & (2 * M - 1)) == 0);
    fill(b, 3 * M, 2);
    fill(c, 3 * M, 3);
    CHECK(intact(b, 3 * M, 2) && intact(c, 3 * M, 3));
    unsigned char *g = h_resize(b, 3 * M, 9 * M); /* grows, in place or moved */
    CHECK(g && intact(g, 3 * M, 2));
    fill(g, 9 * M, 4);
    g = h_resize(g, 9 * M, 5 * M / 4); /* shrinks */
    CHECK(g && intact(g, 5 * M / 4, 4));
    h_free(g, 5 * M / 4);
    h_free(c, 3 * M);
}

/* 64 MiB of 48-byte blocks, all freed, then 64 MiB of 304-byte ones: the second
 * fill takes the first one's memory (the process ends it not much bigger than it
 * was at the end of the first, not 64 MiB bigger). */
static void test_memory_goes_round(void)
{
    const size_t total = (size_t)64 << 20;
    size_t na = total / 48, nb = total / 304;
    void **a = malloc(na * sizeof *a), **b = malloc(nb * sizeof *b);
    CHECK(a && b);
    if (!a || !b)
        return;
    for (size_t i = 0; i < na; i++) {
        a[i] = h_alloc(48);
        memset(a[i], 1, 48);
    }
    long before = rss_kb();
    for (size_t i = 0; i < na; i++)
        h_free(a[i], 48);
    for (size_t i = 0; i < nb; i++) {
        b[i] = h_alloc(304);
        memset(b[i], 2, 304);
    }
    long grown = rss_kb() - before;
    for (size_t i = 0; i < nb; i++)
        h_free(b[i], 304);
    free(a);
    free(b);
#if defined(__SANITIZE_ADDRESS__)
    (void)grown; /* malloc's blocks, held back in ASan's quarantine */
#else
    if (!RUNNING_ON_VALGRIND) {
        if (grown >= 16 * 1024)
            fprintf(stderr, "the second fill grew the process by %ld KiB\n", grown);
        CHECK(grown < 16 * 1024);
    }
#endif
}

/* The limit: growth past it is refused (NULL) while the policy enforces it, and a
 * refused resize leaves the block as it was. */
static void test_limit(void)
{
    heap_set_limit((size_t)1 << 20);
    void *small = heap_alloc((void *)&enforced, NULL, 4, 100);
    CHECK(small != NULL);
    void *big = heap_alloc((void *)&enforced, NULL, 4, (size_t)2 << 20);
    CHECK(big == NULL);
    fill(small, 100, 3);
    void *grown = heap_alloc((void *)&enforced, small, 100, (size_t)2 << 20);
    CHECK(grown == NULL);
    CHECK(intact(small, 100, 3));
    heap_alloc((void *)&enforced, small, 100, 0);
    heap_set_limit(0);
}

/* After heap_exiting (the process is about to exit), a freed block is dropped, not
 * given back: the next block of its size is another one (with the pool; without it,
 * as under ASan, frees stay real). Last: it lasts for the rest of the process. */
static void test_exiting(void)
{
    void *a = heap_alloc(NULL, NULL, 4, 100);
    CHECK(a != NULL);
    heap_alloc(NULL, a, 100, 0);
    void *b = heap_alloc(NULL, NULL, 4, 100);
#if !defined(__SANITIZE_ADDRESS__) /* ASan holds freed blocks back */
    CHECK(b == a); /* a live pool gives the freed block back at once */
#endif
    heap_exiting();
    heap_alloc(NULL, b, 100, 0);
    void *c = heap_alloc(NULL, NULL, 4, 100);
    CHECK(c != NULL);
#if defined(__SANITIZE_ADDRESS__)
    (void)c;
    heap_alloc(NULL, c, 100, 0);
#else
    CHECK(c != b);
    fill(c, 100, 5); /* new memory, whole */
    CHECK(intact(c, 100, 5));
#endif
}

int main(void)
{
    test_small_stays_small();
    test_align_and_contents();
    test_big_blocks();
    test_memory_goes_round();
    test_limit();
    test_exiting();
    return checks_done("heap");
}
