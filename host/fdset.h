/* A set of file descriptors that is itself one pollable descriptor (epoll): a
 * supervisor waits on it in the event loop, then reads its members that are
 * ready (they are non-blocking). Plain C, no Lua. */
#ifndef HPLUA_FDSET_H
#define HPLUA_FDSET_H

/* Returns the set's descriptor (close-on-exec) or -1 with errno set. */
int fdset_open(void);
/* Adds fd (watched for input and hang-up) or removes it; 0 or an errno value. */
int fdset_add(int set, int fd);
int fdset_remove(int set, int fd);
/* Fills fds with up to max members ready now (no wait); returns how many, or -1 with errno. */
int fdset_ready(int set, int *fds, int max);

#endif
