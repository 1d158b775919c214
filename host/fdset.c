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
