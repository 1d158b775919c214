#include "fdset.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>

int fdset_open(void) { return epoll_create1(EPOLL_CLOEXEC); }

int fdset_add(int set, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(set, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

int fdset_remove(int set, int fd) { return epoll_ctl(set, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : errno; }

int fdset_ready(int set, int *fds, int max)
{
    struct epoll_event evs[64];
    if (max > 64)
        max = 64;
    int n;
    do
        n = epoll_wait(set, evs, max, 0);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++)
        fds[i] = evs[i].data.fd;
    return n;
}
