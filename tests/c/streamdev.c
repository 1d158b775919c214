/* A simulated line-oriented device for the hp.serial/hp.tcp tests and benchmark.
 *
 *   streamdev --pty LINK       serves a pseudo-terminal whose slave is linked at LINK
 *   streamdev --tcp [--port N] serves 127.0.0.1 (a free port unless --port)
 *   streamdev --tcp --no-accept --backlog 0   listens and never accepts
 *
 * prints "READY <LINK or port>" once it serves, then answers "\n"-terminated
 * commands (a trailing "\r" is ignored):
 *
 *   *IDN?              HPLUA,SIM-LINE,0,1.0
 *   ECHO <text>        <text>
 *   DELAY <ms>         later replies are sent <ms> after their command
 *   SPLIT <text>       the first half of <text> now, the rest and "\n" 300 ms later
 *   CRLF               crlf\r\n
 *   PROMPT             ready\r\n> (no newline after the prompt)
 *   FLOOD <bytes> <n>  <bytes> bytes in lines of <n> bytes ("\n" included; n 0:
 *                      no newline at all), then END\n, sent as fast as read
 *   SILENT             stops answering
 *   CLOSE              closes the connection once its replies are out (pty: the
 *                      device goes away 0.2 s later, as a hang-up discards what
 *                      the other side has not read yet)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_PENDING 256

static struct {
    double due;
    char *data;
    size_t len;
} pending[MAX_PENDING];
static int npending, silent, delay_ms, closing;
static char out[1 << 16];
static size_t out_len;
static long long flood_left, flood_line, flood_pos;
static int flood_end;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void schedule(const char *data, size_t len, double after)
{
    if (silent || npending == MAX_PENDING)
        return;
    pending[npending].due = now() + after;
    pending[npending].data = malloc(len);
    memcpy(pending[npending].data, data, len);
    pending[npending].len = len;
    npending++;
}

static void reply(const char *text)
{
    char line[1100];
    int n = snprintf(line, sizeof line, "%s\n", text);
    schedule(line, (size_t)n, delay_ms / 1000.0);
}

static void handle(char *cmd)
{
    size_t n = strlen(cmd);
    if (n && cmd[n - 1] == '\r')
        cmd[--n] = 0;
    if (strcmp(cmd, "*IDN?") == 0) {
        reply("HPLUA,SIM-LINE,0,1.0");
    } else if (strncmp(cmd, "ECHO ", 5) == 0) {
        reply(cmd + 5);
    } else if (strncmp(cmd, "DELAY ", 6) == 0) {
        delay_ms = atoi(cmd + 6);
    } else if (strncmp(cmd, "SPLIT ", 6) == 0) {
        size_t len = strlen(cmd + 6), half = len / 2;
        schedule(cmd + 6, half, delay_ms / 1000.0);
        char rest[1100];
        int m = snprintf(rest, sizeof rest, "%s\n", cmd + 6 + half);
        schedule(rest, (size_t)m, delay_ms / 1000.0 + 0.3);
    } else if (strcmp(cmd, "CRLF") == 0) {
        schedule("crlf\r\n", 6, delay_ms / 1000.0);
    } else if (strcmp(cmd, "PROMPT") == 0) {
        schedule("ready\r\n> ", 9, delay_ms / 1000.0);
    } else if (strncmp(cmd, "FLOOD ", 6) == 0) {
        flood_left = atoll(cmd + 6);
        char *sp = strchr(cmd + 6, ' ');
        flood_line = sp ? atoll(sp + 1) : 0;
        flood_pos = 0;
        flood_end = 1;
    } else if (strcmp(cmd, "SILENT") == 0) {
        silent = 1;
    } else if (strcmp(cmd, "CLOSE") == 0) {
        closing = 1; /* once the replies already asked for are out */
    }
}

/* Moves due replies and flood bytes into the output buffer. */
static void produce(void)
{
    double t = now();
    while (npending && pending[0].due <= t && out_len + pending[0].len <= sizeof out) {
        memcpy(out + out_len, pending[0].data, pending[0].len);
        out_len += pending[0].len;
        free(pending[0].data);
        memmove(pending, pending + 1, sizeof pending[0] * (size_t)--npending);
    }
    while (flood_left > 0 && out_len < sizeof out) {
        char c = 'a' + (char)(flood_pos % 26);
        if (flood_line > 0 && flood_pos % flood_line == flood_line - 1)
            c = '\n';
        out[out_len++] = c;
        flood_pos++;
        flood_left--;
    }
    if (flood_left == 0 && flood_end && out_len + 4 <= sizeof out) {
        memcpy(out + out_len, "END\n", 4);
        out_len += 4;
        flood_end = 0;
    }
}

/* Serves one connection (a socket or the pty master) until CLOSE or its end. */
static int serve(int fd)
{
    char in[4096];
    size_t in_len = 0;
    for (;;) {
        produce();
        if (closing && !out_len && !npending)
            return -1;
        int ms = -1;
        if (npending) {
            double left = pending[0].due - now();
            ms = left > 0 ? (int)(left * 1000) + 1 : 0;
        }
        struct pollfd p = {fd, (short)(POLLIN | (out_len ? POLLOUT : 0)), 0};
        if (poll(&p, 1, ms) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (p.revents & POLLOUT) {
            ssize_t n = write(fd, out, out_len);
            if (n > 0) {
                memmove(out, out + n, out_len - (size_t)n);
                out_len -= (size_t)n;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(fd, in + in_len, sizeof in - 1 - in_len);
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (n < 0 && errno == EIO) { /* pty: nobody has the slave open right now */
                    usleep(10000);
                    continue;
                }
                return 0;
            }
            in_len += (size_t)n;
            in[in_len] = 0;
            char *nl;
            while ((nl = strchr(in, '\n')) != NULL) {
                *nl = 0;
                handle(in);
                in_len -= (size_t)(nl + 1 - in);
                memmove(in, nl + 1, in_len + 1);
            }
            if (in_len == sizeof in - 1)
                in_len = 0; /* an overlong command: dropped */
        }
    }
}

static void reset(void)
{
    while (npending)
        free(pending[--npending].data);
    silent = delay_ms = closing = 0;
    out_len = 0;
    flood_left = 0;
    flood_end = 0;
}

int main(int argc, char **argv)
{
    const char *link = NULL;
    int tcp = 0, port = 0, backlog = 4, accept_ = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pty") == 0 && i + 1 < argc)
            link = argv[++i];
        else if (strcmp(argv[i], "--tcp") == 0)
            tcp = 1;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc)
            backlog = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-accept") == 0)
            accept_ = 0;
        else {
            fprintf(stderr, "usage: streamdev --pty LINK | --tcp [--port N] [--no-accept] [--backlog N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (link) {
        int m = posix_openpt(O_RDWR | O_NOCTTY);
        if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
            perror("streamdev: pty");
            return 1;
        }
        const char *slave = ptsname(m);
        int s = open(slave, O_RDWR | O_NOCTTY); /* kept open: the master never sees a hang-up */
        struct termios t;
        if (s < 0 || tcgetattr(s, &t) != 0) {
            perror("streamdev: slave");
            return 1;
        }
        cfmakeraw(&t);
        tcsetattr(s, TCSANOW, &t);
        unlink(link);
        if (symlink(slave, link) != 0) {
            perror("streamdev: symlink");
            return 1;
        }
        fcntl(m, F_SETFL, O_NONBLOCK);
        printf("READY %s\n", link);
        fflush(stdout);
        serve(m);
        usleep(200000);
        unlink(link);
        return 0; /* closing the master hangs the line up */
    }
    if (!tcp) {
        fprintf(stderr, "streamdev: --pty LINK or --tcp\n");
        return 2;
    }
    int srv = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(srv, backlog) != 0) {
        perror("streamdev: listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(srv, (struct sockaddr *)&addr, &alen);
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    if (!accept_)
        for (;;)
            pause();
    for (;;) {
        int c = accept(srv, NULL, NULL);
        if (c < 0)
            continue;
        fcntl(c, F_SETFL, O_NONBLOCK);
        serve(c);
        close(c);
        reset();
    }
}
