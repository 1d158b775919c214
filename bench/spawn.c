/* The bare-C limit for starting and collecting children: posix_spawn + waitpid,
 * stdout on a pipe read to EOF, one child at a time. Prints the elapsed seconds.
 *   spawn N PROGRAM [ARG...] */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spawn N PROGRAM [ARG...]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        int fds[2];
        posix_spawn_file_actions_t fa;
        pid_t pid;
        char buf[4096];
        if (pipe(fds) != 0)
            return 1;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0)
            return 1;
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        while (read(fds[0], buf, sizeof buf) > 0) {
        }
        close(fds[0]);
        waitpid(pid, NULL, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
