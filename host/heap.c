#include "heap.h"

#include "bigmem.h"

static struct {
    size_t used, limit;
} heap;

void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    const heap_policy *policy = ud;
    size_t old = ptr ? osize : 0;
    if (nsize > old && heap.limit && heap.used - old + nsize > heap.limit && policy && policy->enforce &&
        policy->enforce())
        return NULL;
    void *np = bigmem_realloc(ptr, old, nsize);
    if (np || nsize == 0)
        heap.used = heap.used - old + nsize;
    return np;
}

void heap_set_limit(size_t bytes) { heap.limit = bytes; }
size_t heap_limit(void) { return heap.limit; }
