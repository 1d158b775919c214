/* The bare-C limit for starting and collecting children: posix_spawn + waitpid,
 * stdout on a pipe read to EOF. Prints the elapsed seconds.
 *   spawn N PROGRAM [ARG...]        one child at a time
 *   spawn --all N PROGRAM [ARG...]  all N started, then every pipe read to EOF
 *                                   (poll), then waitpid(-1) until none is left */
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int start(char **argv, pid_t *pid)
{
    int fds[2];
    posix_spawn_file_actions_t fa;
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    int rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    return fds[0];
}

static int one_by_one(int n, char **argv)
{
    for (int i = 0; i < n; i++) {
        pid_t pid;
        char buf[4096];
        int fd = start(argv, &pid);
        if (fd < 0)
            return 1;
        while (read(fd, buf, sizeof buf) > 0) {
        }
        close(fd);
        waitpid(pid, NULL, 0);
    }
    return 0;
}

static int all_at_once(int n, char **argv)
{
    struct pollfd *fds = calloc((size_t)n, sizeof *fds);
    if (!fds)
        return 1;
    for (int i = 0; i < n; i++) {
        pid_t pid;
        fds[i].fd = start(argv, &pid);
        fds[i].events = POLLIN;
        if (fds[i].fd < 0)
            return 1;
    }
    for (int open = n; open > 0;) {
        if (poll(fds, (nfds_t)n, -1) < 0)
            return 1;
        for (int i = 0; i < n; i++) {
            char buf[4096];
            if (fds[i].fd >= 0 && fds[i].revents && read(fds[i].fd, buf, sizeof buf) <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open--;
            }
        }
    }
    for (int left = n; left > 0; left--)
        if (waitpid(-1, NULL, 0) < 0)
            return 1;
    free(fds);
    return 0;
}

int main(int argc, char **argv)
{
    int all = argc > 1 && strcmp(argv[1], "--all") == 0;
    if (argc < 3 + all) {
        fprintf(stderr, "usage: spawn [--all] N PROGRAM [ARG...]\n");
        return 2;
    }
    int n = atoi(argv[1 + all]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = all ? all_at_once(n, argv + 2 + all) : one_by_one(n, argv + 2 + all);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc)
        return rc;
    printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
