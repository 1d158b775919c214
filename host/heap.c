#include "heap.h"

#include "bigmem.h"

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
    if (!ptr && heap.donor && (int)osize == heap.donor_tag && nsize == heap.donor_nsize) {
        void *np = bigmem_realloc(heap.donor, heap.donor_size, nsize); /* shrinks in place */
        heap.donor = NULL;
        if (np) {
            heap.taken = 1;
            heap.used += nsize;
        }
        return np;
    }
    void *np = bigmem_realloc(ptr, old, nsize);
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
