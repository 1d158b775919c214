#include "bigmem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t round_pages(size_t n)
{
    size_t page = 4096;
    return (n + page - 1) & ~(page - 1);
}

static int is_big(size_t n) { return n >= BIGMEM_THRESHOLD; }

static void *map(size_t n)
{
    void *p = mmap(NULL, round_pages(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, round_pages(n), MADV_HUGEPAGE);
    return p;
}

void *bigmem_realloc(void *ptr, size_t osize, size_t nsize)
{
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        if (ptr && is_big(osize))
            munmap(ptr, round_pages(osize));
        else
            free(ptr);
        return NULL;
    }
    if (!is_big(nsize) && !is_big(osize))
        return realloc(ptr, nsize);
    if (is_big(nsize) && is_big(osize)) {
        if (round_pages(nsize) == round_pages(osize))
            return ptr;
        void *np = mremap(ptr, round_pages(osize), round_pages(nsize), MREMAP_MAYMOVE);
        if (np == MAP_FAILED)
            return NULL;
        if (nsize > osize)
            madvise(np, round_pages(nsize), MADV_HUGEPAGE);
        return np;
    }
    /* crossing the threshold: move between malloc and mmap */
    void *np = is_big(nsize) ? map(nsize) : malloc(nsize);
    if (!np)
        return NULL;
    if (ptr) {
        memcpy(np, ptr, osize < nsize ? osize : nsize);
        bigmem_realloc(ptr, osize, 0);
    }
    return np;
}
