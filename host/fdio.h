/* Writing whole buffers to a descriptor. Plain C, no Lua. */
#ifndef HPLUA_FDIO_H
#define HPLUA_FDIO_H

#include <stddef.h>

/* Writes all n bytes of p to fd, again after EINTR and, on a non-blocking
 * descriptor that is full, after waiting for room (up to 1 s a time). Returns 0 or
 * the errno value of the write that failed. */
int fd_write_all(int fd, const char *p, size_t n);

/* Reads up to n bytes of fd at offset off into p, again after EINTR and short reads;
 * fewer only where the file ends. Returns the count, or -errno. */
long long fd_pread_full(int fd, char *p, size_t n, long long off);

/* Copies n bytes of in from offset off to fd (in's own offset unchanged): in the
 * kernel (sendfile) where it can, else through a buffer (fd_write_all). Returns 0,
 * the errno value of the call that failed, or EIO when in ends before n bytes. */
int fd_copy_range(int fd, int in, long long off, size_t n);

/* Notes which descriptors below 1024 are open when the process starts (call it first
 * thing in main, before anything is opened); fd_inherited then tells whether fd was one
 * of them, open for writing (w) or at all. */
void fd_note_inherited(void);
int fd_inherited(int fd, int w);

#endif
