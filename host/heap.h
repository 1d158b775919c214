/* The Lua heap: sizes are tracked for --max-memory, which is enforced only while
 * the policy says so (test code runs), so the runner can still record the
 * failure; big blocks come from mmap with huge pages (bigmem.c). Plain C: the
 * allocator has lua_Alloc's shape without including lua.h. */
#ifndef HPLUA_HEAP_H
#define HPLUA_HEAP_H
#include <stddef.h>

typedef struct heap_policy {
    int (*enforce)(void); /* is the limit enforced now? */
} heap_policy;

/* lua_Alloc; ud is a heap_policy. */
void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* The limit of --max-memory in bytes (0: none). */
void heap_set_limit(size_t bytes);
size_t heap_limit(void);

#endif
