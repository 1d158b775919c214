#include "fdio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/sendfile.h>
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

long long fd_pread_full(int fd, char *p, size_t n, long long off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)(off + (long long)got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

int fd_copy_range(int fd, int in, long long off, size_t n)
{
    off_t pos = (off_t)off;
    while (n > 0) { /* a page cache to a page cache: no copy through this process */
        ssize_t w = sendfile(fd, in, &pos, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) /* EAGAIN (a full pipe), EINVAL (a descriptor sendfile cannot take), the end */
            break;
        n -= (size_t)w;
    }
    if (n == 0)
        return 0;
    enum { BUF = 1 << 18 };
    char *buf = malloc(BUF);
    if (!buf)
        return ENOMEM;
    int err = 0;
    while (n > 0 && !err) {
        long long r = fd_pread_full(in, buf, n < BUF ? n : BUF, pos);
        if (r <= 0) {
            err = r < 0 ? (int)-r : EIO;
            break;
        }
        err = fd_write_all(fd, buf, (size_t)r);
        pos += r;
        n -= (size_t)r;
    }
    free(buf);
    return err;
}

#define NOTED 1024
static unsigned char given[NOTED]; /* 0: not open at start, 1: open, 2: open for writing */

static void note(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && fd < NOTED)
        given[fd] = (fl & O_ACCMODE) == O_RDONLY ? 1 : 2;
}

/* The open descriptors as /proc lists them (a few system calls), else each in turn */
void fd_note_inherited(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        for (int fd = 0; fd < NOTED; fd++)
            note(fd);
        return;
    }
    int own = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == '\0' && end != e->d_name && fd >= 0 && fd < NOTED && fd != own)
            note((int)fd);
    }
    closedir(d);
}

int fd_inherited(int fd, int w) { return fd >= 0 && fd < NOTED && given[fd] >= (w ? 2 : 1); }
