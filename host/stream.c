/* Serial ports and TCP connections: termios, locks and sockets (see stream.h). */
#include "stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

/* termios2 (Linux): any rate via BOTHER. Declared here because <asm/termbits.h>
 * clashes with <termios.h>; the layout is the kernel's (NCCS 19 on the
 * architectures with the generic ioctls). */
#if defined(__linux__) && defined(TCSETS2) && !defined(__powerpc__) && !defined(__sparc__) && !defined(__mips__)
#define HAVE_TERMIOS2 1
struct termios2 {
    tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
    cc_t c_line;
    cc_t c_cc[19];
    speed_t c_ispeed, c_ospeed;
};
#ifndef BOTHER
#define BOTHER 0010000
#endif
#endif

static const struct {
    long rate;
    speed_t code;
} bauds[] = {
    {50, B50},         {75, B75},         {110, B110},         {134, B134},         {150, B150},
    {200, B200},       {300, B300},       {600, B600},         {1200, B1200},       {1800, B1800},
    {2400, B2400},     {4800, B4800},     {9600, B9600},       {19200, B19200},     {38400, B38400},
    {57600, B57600},   {115200, B115200}, {230400, B230400},   {460800, B460800},   {500000, B500000},
    {576000, B576000}, {921600, B921600}, {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
    {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000}, {3500000, B3500000}, {4000000, B4000000},
};

static int standard_baud(long rate, speed_t *code)
{
    for (size_t i = 0; i < sizeof bauds / sizeof bauds[0]; i++) {
        if (bauds[i].rate == rate) {
            *code = bauds[i].code;
            return 1;
        }
    }
    return 0;
}

#ifdef HAVE_TERMIOS2
/* Sets a rate with no B constant, then reads it back: a driver that cannot
 * produce it within 2% gets EINVAL. */
static int set_custom_baud(int fd, long rate)
{
    struct termios2 t2;
    if (ioctl(fd, TCGETS2, &t2) != 0)
        return errno;
    t2.c_cflag &= ~(tcflag_t)CBAUD;
    t2.c_cflag |= BOTHER;
    t2.c_ispeed = t2.c_ospeed = (speed_t)rate;
    if (ioctl(fd, TCSETS2, &t2) != 0)
        return errno;
    if (ioctl(fd, TCGETS2, &t2) != 0)
        return errno;
    long got = (long)t2.c_ospeed;
    if (got <= 0 || labs(got - rate) * 50 > rate)
        return EINVAL;
    return 0;
}
#endif

int serial_termios(struct termios *tp, const serial_config *cfg)
{
    struct termios t = *tp;
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CMSPAR | CSTOPB | CRTSCTS);
    static const tcflag_t sizes[] = {CS5, CS6, CS7, CS8};
    t.c_cflag |= sizes[cfg->data_bits - 5];
    switch (cfg->parity) {
    case 'e': t.c_cflag |= PARENB; break;
    case 'o': t.c_cflag |= PARENB | PARODD; break;
    case 'm': t.c_cflag |= PARENB | CMSPAR | PARODD; break;
    case 's': t.c_cflag |= PARENB | CMSPAR; break;
    default: break;
    }
    if (cfg->stop_bits == 2)
        t.c_cflag |= CSTOPB;
    t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
    if (cfg->flow == SERIAL_FLOW_RTSCTS)
        t.c_cflag |= CRTSCTS;
    else if (cfg->flow == SERIAL_FLOW_XONXOFF)
        t.c_iflag |= IXON | IXOFF;
    t.c_cc[VMIN] = 1; /* with O_NONBLOCK: EAGAIN when empty (VMIN 0 would read 0 bytes, like an end) */
    t.c_cc[VTIME] = 0;
    speed_t code;
    int custom = !standard_baud(cfg->baud, &code);
    if (custom)
        code = B38400; /* a placeholder, replaced through termios2 */
    cfsetispeed(&t, code);
    cfsetospeed(&t, code);
    *tp = t;
    return custom;
}

int serial_configure(int fd, const serial_config *cfg)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0)
        return errno;
    int custom = serial_termios(&t, cfg);
    if (tcsetattr(fd, TCSANOW, &t) != 0)
        return errno;
    if (custom) {
#ifdef HAVE_TERMIOS2
        return set_custom_baud(fd, cfg->baud);
#else
        return EINVAL;
#endif
    }
    return 0;
}

/* The flock holder of (dev, ino) in /proc/locks (possibly ourselves). */
static long holder_by_locks(dev_t dev, ino_t ino)
{
    FILE *f = fopen("/proc/locks", "r");
    if (!f)
        return 0;
    char line[256], want[64];
    snprintf(want, sizeof want, "%02x:%02x:%lu", major(dev), minor(dev), (unsigned long)ino);
    long found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char type[16], id[64];
        long pid;
        if (strstr(line, "->")) /* a waiter, not a holder */
            continue;
        if (sscanf(line, "%*s %15s %*s %*s %ld %63s", type, &pid, id) == 3 && strcmp(type, "FLOCK") == 0 &&
            strcmp(id, want) == 0)
            found = pid;
    }
    fclose(f);
    return found;
}

/* Another process with (dev, ino) open, found through /proc/PID/fd (visible for
 * our own user's processes, or all as root). */
static long holder_by_fds(dev_t dev, ino_t ino)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;
    long found = 0, self = (long)getpid();
    struct dirent *de;
    while (!found && (de = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/fd", pid);
        DIR *fds = opendir(path);
        if (!fds)
            continue;
        struct dirent *fe;
        while (!found && (fe = readdir(fds)) != NULL) {
            char fdpath[384];
            struct stat st;
            snprintf(fdpath, sizeof fdpath, "%s/%s", path, fe->d_name);
            if (fe->d_name[0] != '.' && stat(fdpath, &st) == 0 && st.st_rdev == dev && st.st_ino == ino)
                found = pid;
        }
        closedir(fds);
    }
    closedir(proc);
    return found;
}

long serial_holder(const char *device)
{
    struct stat st;
    if (stat(device, &st) != 0)
        return 0;
    long pid = holder_by_locks(st.st_dev, st.st_ino);
    if (!pid && S_ISCHR(st.st_mode))
        pid = holder_by_fds(st.st_rdev, st.st_ino);
    return pid;
}

int serial_open(const char *device, const serial_config *cfg, int *fdp, long *holder)
{
    *fdp = -1;
    *holder = 0;
    int fd = open(device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == EBUSY) /* TIOCEXCL of another opener */
            *holder = serial_holder(device);
        return err;
    }
    int err = 0;
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        err = errno == EINVAL ? ENOTTY : errno;
        goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? EBUSY : errno;
        if (err == EBUSY)
            *holder = serial_holder(device);
        goto fail;
    }
    if (ioctl(fd, TIOCEXCL) != 0) {
        err = errno;
        goto fail;
    }
    err = serial_configure(fd, cfg);
    if (err)
        goto fail;
    tcflush(fd, TCIOFLUSH); /* nothing from before we opened it */
    *fdp = fd;
    return 0;
fail:
    ioctl(fd, TIOCNXCL);
    close(fd);
    return err;
}

int stream_outq(int fd, int *bytes)
{
    *bytes = 0;
    return ioctl(fd, TIOCOUTQ, bytes) == 0 ? 0 : errno;
}

void serial_finish(int fd) { tcdrain(fd); }

void serial_flush_input(int fd) { tcflush(fd, TCIFLUSH); }

void serial_close(int fd)
{
    ioctl(fd, TIOCNXCL);
    close(fd); /* drops the flock too */
}

int tcp_start(const struct sockaddr *addr, socklen_t len, int *fdp)
{
    *fdp = -1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1; /* requests and replies are small: send them at once */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fdp = fd;
    if (connect(fd, addr, len) == 0)
        return 0;
    int err = errno;
    if (err == EINPROGRESS || err == EINTR)
        return EINPROGRESS;
    close(fd);
    *fdp = -1;
    return err;
}

int tcp_finish(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}

ssize_t stream_read(int fd, char *buf, size_t n)
{
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EWOULDBLOCK)
            return -EAGAIN;
        if (err == EIO) /* a terminal whose other end hung up (pty master closed, USB unplugged) */
            return 0;
        return -err;
    }
}

ssize_t stream_write(int fd, int is_socket, const char *buf, size_t n)
{
    for (;;) {
        ssize_t r = is_socket ? send(fd, buf, n, MSG_NOSIGNAL) : write(fd, buf, n);
        if (r >= 0)
            return r;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EWOULDBLOCK)
            return -EAGAIN;
        return -err;
    }
}

const char *stream_errno_name(int err, char *buf, size_t len)
{
    const char *name = strerrorname_np(err);
    if (name)
        return name;
    snprintf(buf, len, "E%d", err);
    return buf;
}
