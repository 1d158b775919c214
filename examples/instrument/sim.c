/* A simulated SCPI multimeter for the example and the tests. Listens on
 * 127.0.0.1 (a free port unless --port is given), prints "LISTENING <port>", and
 * answers line-terminated SCPI like an LXI instrument:
 *
 *   *IDN?            HPLUA,SIM-DMM,SN0001,1.0
 *   *RST             clears the error queue and the reading list position
 *   MEAS:VOLT:DC?    the next value of --values (cycling), e.g. 3.301
 *   CONF:VOLT <v>    from now on MEAS:VOLT:DC? answers <v>
 *   SYST:ERR?        the oldest queued error, or +0,"No error"
 *   SIM:SILENT       stops answering (a hung instrument)
 *   anything else    queues -113,"Undefined header"
 *
 *   sim [--port N] [--values 3.301,4.95,...]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define MAX_VALUES 32

static char values[MAX_VALUES][32];
static int nvalues, next_value, silent;
static char errors[8][64];
static int nerrors;

static void push_error(const char *e)
{
    if (nerrors < 8)
        snprintf(errors[nerrors++], sizeof errors[0], "%s", e);
}

static void reply(int fd, const char *text)
{
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", text);
    if (!silent && send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
        perror("sim: send");
}

static void handle(int fd, char *cmd)
{
    size_t n = strlen(cmd);
    while (n && (cmd[n - 1] == '\r' || cmd[n - 1] == ' '))
        cmd[--n] = 0;
    if (strcmp(cmd, "*IDN?") == 0) {
        reply(fd, "HPLUA,SIM-DMM,SN0001,1.0");
    } else if (strcmp(cmd, "*RST") == 0) {
        nerrors = 0;
        next_value = 0;
    } else if (strcmp(cmd, "MEAS:VOLT:DC?") == 0) {
        reply(fd, values[next_value]);
        next_value = (next_value + 1) % nvalues;
    } else if (strncmp(cmd, "CONF:VOLT ", 10) == 0) {
        snprintf(values[0], sizeof values[0], "%s", cmd + 10);
        nvalues = 1;
        next_value = 0;
    } else if (strcmp(cmd, "SYST:ERR?") == 0) {
        if (nerrors) {
            reply(fd, errors[0]);
            memmove(errors[0], errors[1], sizeof errors[0] * (size_t)--nerrors);
        } else {
            reply(fd, "+0,\"No error\"");
        }
    } else if (strcmp(cmd, "SIM:SILENT") == 0) {
        silent = 1;
    } else if (n) {
        push_error("-113,\"Undefined header\"");
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *list = "3.301";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--values") == 0)
            list = argv[i + 1];
    }
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *tok = strtok(copy, ","); tok && nvalues < MAX_VALUES; tok = strtok(NULL, ","))
        snprintf(values[nvalues++], sizeof values[0], "%s", tok);

    int srv = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(srv, 4) != 0) {
        perror("sim: listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(srv, (struct sockaddr *)&addr, &alen);
    printf("LISTENING %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct pollfd fds[1 + MAX_CLIENTS];
    char bufs[MAX_CLIENTS][1024];
    size_t lens[MAX_CLIENTS];
    int nfds = 1;
    fds[0] = (struct pollfd){srv, POLLIN, 0};
    for (;;) {
        if (poll(fds, (nfds_t)nfds, -1) < 0)
            continue;
        if (fds[0].revents && nfds < 1 + MAX_CLIENTS) {
            int c = accept(srv, NULL, NULL);
            if (c >= 0) {
                lens[nfds - 1] = 0;
                fds[nfds++] = (struct pollfd){c, POLLIN, 0};
            }
        }
        for (int i = 1; i < nfds; i++) {
            if (!fds[i].revents)
                continue;
            char *b = bufs[i - 1];
            ssize_t n = recv(fds[i].fd, b + lens[i - 1], sizeof bufs[0] - 1 - lens[i - 1], 0);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i] = fds[--nfds];
                memcpy(bufs[i - 1], bufs[nfds - 1], sizeof bufs[0]);
                lens[i - 1] = lens[nfds - 1];
                i--;
                continue;
            }
            lens[i - 1] += (size_t)n;
            b[lens[i - 1]] = 0;
            char *nl;
            while ((nl = strchr(b, '\n')) != NULL) {
                *nl = 0;
                handle(fds[i].fd, b);
                size_t rest = lens[i - 1] - (size_t)(nl + 1 - b);
                memmove(b, nl + 1, rest + 1);
                lens[i - 1] = rest;
            }
            if (lens[i - 1] == sizeof bufs[0] - 1)
                lens[i - 1] = 0; /* an overlong line: drop it */
        }
    }
}
