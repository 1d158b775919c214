#include "bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define HUGE_PAGE ((size_t)2 << 20)

void bigmem_populate(void *p, size_t len)
{
    if (RUNNING_ON_VALGRIND)
        return; /* valgrind 3.19 does not know this advice */
    static uintptr_t page;
    if (!page)
        page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(page - 1);
    (void)madvise((void *)a, (uintptr_t)p + len - a, 23 /* MADV_POPULATE_WRITE, Linux 5.14 */);
}

/* malloc and realloc whose heap, when it grows at its top (brk) by what a block
 * needs and 128 KiB more, has those pages populated at once. sbrk(0) only reads
 * glibc's note of the top. */
static void *heap_grown(void *top, void *block)
{
    char *now = sbrk(0);
    if (block && (char *)top != (char *)-1 && now > (char *)top)
        bigmem_populate(top, (size_t)(now - (char *)top));
    return block;
}

static void *heap_malloc(size_t n)
{
    void *top = sbrk(0);
    return heap_grown(top, malloc(n));
}

static void *heap_realloc(void *ptr, size_t n)
{
    void *top = sbrk(0);
    return heap_grown(top, realloc(ptr, n));
}

/* The length of the mapping that holds n bytes: whole huge pages from 2 MiB on.
 * A mapping that ended inside a huge page would get small pages there, and keep
 * them for that whole 2 MiB once it grows over it. */
static size_t map_len(size_t n)
{
    size_t unit = n >= HUGE_PAGE ? HUGE_PAGE : 4096;
    return (n + unit - 1) & ~(unit - 1);
}

static int is_big(size_t n) { return n >= BIGMEM_THRESHOLD; }

/* Mappings of freed blocks, kept for the next big blocks: their pages stay (a
 * fresh page costs a fault, or a populate and a first touch, ~10-20 us on a
 * paravirtualised machine), so a big string or buffer made and dropped over and
 * over (a file read back a MiB at a time) reuses the same memory. At most
 * KEPT_BYTES in all (a station's RSS counts them), none under valgrind or ASan
 * (whose checks should see every free). */
#define KEPT_SLOTS 4
#define KEPT_BYTES ((size_t)4 << 20)
static struct {
    char *p[KEPT_SLOTS];
    size_t len[KEPT_SLOTS];
    size_t total;
} kept;

#if defined(__SANITIZE_ADDRESS__)
#define KEEP 0 /* ASan's checks should see every free too */
#else
#define KEEP (!RUNNING_ON_VALGRIND)
#endif

static void unmap(void *p, size_t len)
{
    if (KEEP && len <= KEPT_BYTES / 2) {
        while (kept.total + len > KEPT_BYTES) { /* room: kept ones go, first slots first */
            int gone = 0;
            for (int i = 0; i < KEPT_SLOTS && !gone; i++)
                if (kept.p[i]) {
                    munmap(kept.p[i], kept.len[i]);
                    kept.total -= kept.len[i];
                    kept.p[i] = NULL;
                    gone = 1;
                }
            if (!gone) { /* none kept: the count is wrong (never, but never loop) */
                kept.total = 0;
                break;
            }
        }
        for (int i = 0; i < KEPT_SLOTS; i++)
            if (!kept.p[i]) {
                kept.p[i] = p;
                kept.len[i] = len;
                kept.total += len;
                return;
            }
    }
    munmap(p, len);
}

/* A kept mapping of at least len bytes (the smallest), cut to len; or NULL. */
static void *reuse(size_t len)
{
    int best = -1;
    for (int i = 0; i < KEPT_SLOTS; i++)
        if (kept.p[i] && kept.len[i] >= len && (best < 0 || kept.len[i] < kept.len[best]))
            best = i;
    if (best < 0)
        return NULL;
    char *p = kept.p[best];
    size_t have = kept.len[best];
    kept.p[best] = NULL;
    kept.total -= have;
    if (have > len)
        munmap(p + len, have - len);
    return p;
}

/* Memory starting at a huge-page boundary (a transparent huge page fills only an
 * aligned 2 MiB of a mapping, and mmap and mremap align to 4 KiB only): a kept
 * mapping, else a fresh one. */
static void *map(size_t n)
{
    size_t len = map_len(n);
    void *again = reuse(len);
    if (again)
        return again;
    char *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (p + HUGE_PAGE > a)
        munmap(a + len, (size_t)(p + HUGE_PAGE - a));
    madvise(a, len, MADV_HUGEPAGE);
    return a;
}

/* Grows a mapping where it is, or moves its pages (not their contents) to a
 * fresh aligned range: mremap moves page tables, huge pages whole when both ends
 * are aligned. */
static void *grow(void *ptr, size_t osize, size_t nsize)
{
    size_t olen = map_len(osize), nlen = map_len(nsize);
    /* valgrind 3.19 leaves what mremap grows in place or moves to a fixed address
     * unaddressable: there, the kernel picks the address */
    void *np = mremap(ptr, olen, nlen, RUNNING_ON_VALGRIND ? MREMAP_MAYMOVE : 0);
    if (np == MAP_FAILED && !RUNNING_ON_VALGRIND) {
        void *dst = map(nsize);
        if (!dst)
            return NULL;
        np = mremap(ptr, olen, nlen, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
        if (np == MAP_FAILED) {
            munmap(dst, nlen);
            return NULL;
        }
    }
    madvise(np, nlen, MADV_HUGEPAGE);
    return np;
}

void *bigmem_realloc(void *ptr, size_t osize, size_t nsize)
{
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        if (ptr && is_big(osize))
            unmap(ptr, map_len(osize));
        else
            free(ptr);
        return NULL;
    }
    if (!is_big(nsize) && !is_big(osize))
        return heap_realloc(ptr, nsize);
    if (is_big(nsize) && is_big(osize)) {
        if (map_len(nsize) == map_len(osize))
            return ptr;
        if (nsize > osize)
            return grow(ptr, osize, nsize);
        void *np = mremap(ptr, map_len(osize), map_len(nsize), 0); /* shrinks in place */
        return np == MAP_FAILED ? NULL : np;
    }
    /* crossing the threshold: move between malloc and mmap */
    void *np = is_big(nsize) ? map(nsize) : heap_malloc(nsize);
    if (!np)
        return NULL;
    if (ptr) {
        if (is_big(nsize))
            bigmem_populate(np, osize); /* written now */
        memcpy(np, ptr, osize < nsize ? osize : nsize);
        bigmem_realloc(ptr, osize, 0);
    }
    return np;
}
