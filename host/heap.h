/* The Lua heap: sizes are tracked for --max-memory, which is enforced only while
 * the policy says so (test code runs), so the runner can still record the
 * failure; small blocks come from size-class slabs (heap.c), big ones from mmap
 * with huge pages (bigmem.c). Plain C: the allocator has lua_Alloc's shape
 * without including lua.h. */
#ifndef HPLUA_HEAP_H
#define HPLUA_HEAP_H
#include <stddef.h>

typedef struct heap_policy {
    int (*enforce)(void); /* is the limit enforced now? */
} heap_policy;

/* lua_Alloc; ud is a heap_policy. */
void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Hand-over of a big block without a copy: the next new object of type tag and
 * exactly nsize bytes is block itself (block_size bytes from bigmem, shrunk to
 * nsize). Disarmed by that allocation, by a refusal, or by heap_donate_end. */
void heap_donate(void *block, size_t block_size, size_t nsize, int tag);
/* Returns whether the block was taken. */
int heap_donate_end(void);
/* Records the size of the next new object of type tag (heap_probe_end returns it). */
void heap_probe(int tag);
size_t heap_probe_end(void);

/* From now on frees are dropped, up to 256 MiB of them: the process is about to
 * exit, which gives its memory back at once, and lua_close then walks the state's
 * objects without freeing each (a fifth of the time for 100,000 tests). Not with
 * the pool off (valgrind, ASan): their checks see every free. */
void heap_exiting(void);

/* The limit of --max-memory in bytes (0: none). */
void heap_set_limit(size_t bytes);
size_t heap_limit(void);

#endif
