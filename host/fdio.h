/* Writing whole buffers to a descriptor. Plain C, no Lua. */
#ifndef HPLUA_FDIO_H
#define HPLUA_FDIO_H

#include <stddef.h>

/* Writes all n bytes of p to fd, again after EINTR and, on a non-blocking
 * descriptor that is full, after waiting for room (up to 1 s a time). Returns 0 or
 * the errno value of the write that failed. */
int fd_write_all(int fd, const char *p, size_t n);

#endif
