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

#endif
