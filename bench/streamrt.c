/* The C baseline of the stream round-trip benchmark: N request/response
 * exchanges ("ECHO x\n" -> "x\n") with streamdev over a pty or TCP, with a raw
 * non-blocking descriptor and poll, as a hand-written C driver would do them.
 * Prints the elapsed seconds.
 *   streamrt pty PATH N | streamrt tcp PORT N */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: streamrt pty PATH N | streamrt tcp PORT N\n");
        return 2;
    }
    int fd, n = atoi(argv[3]);
    if (strcmp(argv[1], "pty") == 0) {
        fd = open(argv[2], O_RDWR | O_NOCTTY | O_NONBLOCK);
        struct termios t;
        if (fd < 0 || tcgetattr(fd, &t) != 0) {
            perror(argv[2]);
            return 1;
        }
        cfmakeraw(&t);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        tcsetattr(fd, TCSANOW, &t);
    } else {
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)atoi(argv[2]));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("connect");
            return 1;
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    char buf[256];
    size_t len = 0;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        if (write(fd, "ECHO x\n", 7) != 7) {
            perror("write");
            return 1;
        }
        for (;;) {
            char *nl = memchr(buf, '\n', len);
            if (nl) {
                size_t used = (size_t)(nl + 1 - buf);
                if (used != 2 || buf[0] != 'x') {
                    fprintf(stderr, "unexpected reply\n");
                    return 1;
                }
                memmove(buf, nl + 1, len - used);
                len -= used;
                break;
            }
            ssize_t r = read(fd, buf + len, sizeof buf - len);
            if (r > 0) {
                len += (size_t)r;
                continue;
            }
            if (r == 0) {
                fprintf(stderr, "closed\n");
                return 1;
            }
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, -1);
        }
    }
    printf("%.6f\n", now() - t0);
    return 0;
}
