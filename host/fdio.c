#include "fdio.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

int fd_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 1000);
            continue;
        }
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
