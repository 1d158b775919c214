/* Unit tests of stream.c without Lua: serial settings read back from the kernel
 * (termios and termios2), exclusivity with the holder's PID, open errors, TCP
 * connect outcomes and errno names. Uses pseudo-terminals, so it needs no hardware. */
#include "stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"

/* A pty pair; the slave's path in path. The master stays open. */
static int make_pty(char *path, size_t len)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) {
        perror("pty");
        exit(1);
    }
    snprintf(path, len, "%s", ptsname(m));
    return m;
}

struct termios2 { /* the kernel's layout, as stream.c declares it */
    tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
    cc_t c_line;
    cc_t c_cc[19];
    speed_t c_ispeed, c_ospeed;
};

/* The termios a configuration makes (a pty ignores data bits and parity, so
 * these are checked on the structure). */
static void test_termios(void)
{
    struct termios t;
    memset(&t, 0, sizeof t);
    t.c_lflag = ICANON | ECHO;
    serial_config cfg = {115200, 7, 'e', 2, SERIAL_FLOW_RTSCTS};
    CHECK(serial_termios(&t, &cfg) == 0);
    CHECK(cfgetospeed(&t) == B115200 && cfgetispeed(&t) == B115200);
    CHECK((t.c_cflag & CSIZE) == CS7);
    CHECK((t.c_cflag & (PARENB | PARODD | CMSPAR)) == PARENB);
    CHECK(t.c_cflag & CSTOPB);
    CHECK(t.c_cflag & CRTSCTS);
    CHECK(t.c_cflag & (CLOCAL | CREAD));
    CHECK(!(t.c_lflag & (ICANON | ECHO)));
    CHECK(t.c_cc[VMIN] == 1 && t.c_cc[VTIME] == 0);
    cfg = (serial_config){250000, 8, 'o', 1, SERIAL_FLOW_XONXOFF};
    CHECK(serial_termios(&t, &cfg) == 1); /* no B constant */
    CHECK((t.c_cflag & CSIZE) == CS8);
    CHECK((t.c_cflag & (PARENB | PARODD | CMSPAR)) == (PARENB | PARODD));
    CHECK(!(t.c_cflag & (CSTOPB | CRTSCTS)));
    CHECK((t.c_iflag & (IXON | IXOFF)) == (IXON | IXOFF));
    cfg = (serial_config){4000000, 5, 'm', 1, SERIAL_FLOW_NONE};
    CHECK(serial_termios(&t, &cfg) == 0);
    CHECK(cfgetospeed(&t) == B4000000);
    CHECK((t.c_cflag & CSIZE) == CS5);
    CHECK((t.c_cflag & (PARENB | CMSPAR | PARODD)) == (PARENB | CMSPAR | PARODD));
    CHECK(!(t.c_iflag & (IXON | IXOFF)));
    cfg = (serial_config){9600, 6, 's', 1, SERIAL_FLOW_NONE};
    CHECK(serial_termios(&t, &cfg) == 0);
    CHECK((t.c_cflag & CSIZE) == CS6);
    CHECK((t.c_cflag & (PARENB | CMSPAR | PARODD)) == (PARENB | CMSPAR));
}

/* Settings applied to a real terminal (a pty) and read back from the kernel. */
static void test_settings(void)
{
    char path[128];
    int m = make_pty(path, sizeof path);
    int fd;
    long holder;
    serial_config cfg = {115200, 8, 'n', 2, SERIAL_FLOW_RTSCTS};
    CHECK(serial_open(path, &cfg, &fd, &holder) == 0);
    struct termios t;
    CHECK(tcgetattr(fd, &t) == 0);
    CHECK(cfgetospeed(&t) == B115200);
    CHECK(t.c_cflag & CSTOPB);
    CHECK(t.c_cflag & CRTSCTS);
    CHECK(!(t.c_lflag & (ICANON | ECHO)));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    cfg = (serial_config){250000, 8, 'n', 1, SERIAL_FLOW_XONXOFF}; /* no B constant: termios2 */
    CHECK(serial_configure(fd, &cfg) == 0);
#ifdef TCGETS2
    struct termios2 t2;
    CHECK(ioctl(fd, TCGETS2, &t2) == 0);
    CHECK(t2.c_ospeed == 250000);
#endif
    CHECK(tcgetattr(fd, &t) == 0);
    CHECK(!(t.c_cflag & (CSTOPB | CRTSCTS)));
    CHECK((t.c_iflag & (IXON | IXOFF)) == (IXON | IXOFF));

    /* reads: nothing yet is EAGAIN, data is data, a hung-up line is the end */
    char buf[16];
    CHECK(stream_read(fd, buf, sizeof buf) == -EAGAIN);
    CHECK(write(m, "ok\n", 3) == 3);
    usleep(20000);
    CHECK(stream_read(fd, buf, sizeof buf) == 3);
    CHECK(stream_write(fd, 0, "hi", 2) == 2);
    close(m);
    CHECK(stream_read(fd, buf, sizeof buf) == 0);
    serial_close(fd);
}

static void test_exclusive(void)
{
    char path[128];
    int m = make_pty(path, sizeof path);
    int fd, fd2;
    long holder = -1;
    serial_config cfg = {9600, 8, 'n', 1, SERIAL_FLOW_NONE};
    CHECK(serial_open(path, &cfg, &fd, &holder) == 0);
    CHECK(holder == 0);
    /* a second opener in this process: busy, held by us */
    CHECK(serial_open(path, &cfg, &fd2, &holder) == EBUSY);
    CHECK(fd2 == -1);
    CHECK(holder == (long)getpid());
    CHECK(serial_holder(path) == (long)getpid());
    serial_close(fd);

    /* held by another process: its PID */
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t child = fork();
    if (child == 0) {
        int cfd;
        long h;
        if (serial_open(path, &cfg, &cfd, &h) != 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(serial_open(path, &cfg, &fd2, &holder) == EBUSY);
    CHECK(holder == (long)child);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    /* the holder died: the port is free again */
    CHECK(serial_open(path, &cfg, &fd, &holder) == 0);
    serial_close(fd);
    close(ready[0]);
    close(ready[1]);
    close(m);
}

static void test_open_errors(void)
{
    int fd;
    long holder;
    serial_config cfg = {9600, 8, 'n', 1, SERIAL_FLOW_NONE};
    CHECK(serial_open("/nonexistent/ttyUSB9", &cfg, &fd, &holder) == ENOENT);
    CHECK(serial_open("/dev/null", &cfg, &fd, &holder) == ENOTTY);
    CHECK(fd == -1);
}

static void test_tcp(void)
{
    /* a port nobody listens on: bind one, take its number, close it */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    int fd;
    int rc = tcp_start((struct sockaddr *)&a, sizeof a, &fd);
    if (rc == EINPROGRESS) {
        usleep(50000);
        rc = tcp_finish(fd);
        close(fd);
    }
    CHECK(rc == ECONNREFUSED);

    /* a listener: connected (at once or after POLLOUT) */
    s = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = 0;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 4) == 0);
    len = sizeof a;
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    rc = tcp_start((struct sockaddr *)&a, sizeof a, &fd);
    if (rc == EINPROGRESS) {
        usleep(50000);
        rc = tcp_finish(fd);
    }
    CHECK(rc == 0);
    int pending = -1;
    CHECK(stream_write(fd, 1, "abc", 3) == 3);
    CHECK(stream_outq(fd, &pending) == 0 && pending >= 0);
    int peer = accept(s, NULL, NULL);
    close(peer);
    usleep(50000);
    char buf[8];
    CHECK(stream_read(fd, buf, sizeof buf) == 0 || stream_read(fd, buf, sizeof buf) == 0);
    close(fd);
    close(s);
}

static void test_names(void)
{
    char buf[16];
    CHECK(strcmp(stream_errno_name(ENOENT, buf, sizeof buf), "ENOENT") == 0);
    CHECK(strcmp(stream_errno_name(ECONNREFUSED, buf, sizeof buf), "ECONNREFUSED") == 0);
    CHECK(strcmp(stream_errno_name(EHOSTUNREACH, buf, sizeof buf), "EHOSTUNREACH") == 0);
    CHECK(strcmp(stream_errno_name(9999, buf, sizeof buf), "E9999") == 0);
}

int main(void)
{
    test_termios();
    test_settings();
    test_exclusive();
    test_open_errors();
    test_tcp();
    test_names();
    return checks_done("stream");
}
