/* Large buffers straight from mmap: they grow with mremap (no copying) and ask
 * for transparent huge pages, so capturing hundreds of MiB of child output or
 * building a big Lua string costs few page faults. Plain C. */
#ifndef HPLUA_BIGMEM_H
#define HPLUA_BIGMEM_H
#include <stddef.h>

#define BIGMEM_THRESHOLD ((size_t)1 << 20)

/* realloc for blocks of at least BIGMEM_THRESHOLD bytes (osize 0: new block;
 * nsize 0: free). Blocks below the threshold go to malloc; the caller passes the
 * exact old size, which tells which allocator owns the block. */
void *bigmem_realloc(void *ptr, size_t osize, size_t nsize);

/* Fills the pages of [p, p + len) in one call (MADV_POPULATE_WRITE) rather than
 * one page fault at a time: 1 us a page against 20 on a paravirtualised machine,
 * a few times less on bare metal. Only for memory about to be written. Best effort:
 * a kernel before 5.14 refuses, and the pages come by faults as before. */
void bigmem_populate(void *p, size_t len);

#endif
