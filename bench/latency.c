/* The bare-C floor of exit-detection latency: IDLE children of EXITER that stay
 * alive, then RUNS children of EXITER started one at a time (posix_spawn, stdout on
 * a pipe), each sleeping (i * 37) % 50 ms and printing its CLOCK_MONOTONIC time
 * before it exits; the parent reads the pipe to EOF and waits for that pid with
 * waitpid. Latency = the time waitpid returned - the time the child printed, as
 * bench section 8 measures hplua. Prints the median and the 99th percentile.
 *   latency EXITER IDLE RUNS */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: latency EXITER IDLE RUNS\n");
        return 2;
    }
    int idle = atoi(argv[2]), runs = atoi(argv[3]);
    pid_t *idle_pids = calloc((size_t)idle + 1, sizeof *idle_pids);
    double *lat = calloc((size_t)runs + 1, sizeof *lat);
    if (!idle_pids || !lat || runs < 1)
        return 2;
    char *idle_argv[] = {argv[1], "600000", NULL};
    for (int i = 0; i < idle; i++)
        if (posix_spawn(&idle_pids[i], argv[1], NULL, NULL, idle_argv, environ) != 0)
            return 1;
    for (int i = 0; i < runs; i++) {
        int fds[2];
        char ms[16], buf[64];
        snprintf(ms, sizeof ms, "%d", (i * 37) % 50);
        char *av[] = {argv[1], ms, NULL};
        posix_spawn_file_actions_t fa;
        if (pipe(fds) != 0)
            return 1;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        pid_t pid;
        int rc = posix_spawn(&pid, argv[1], &fa, NULL, av, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        if (rc != 0)
            return 1;
        size_t len = 0;
        ssize_t n;
        while (len < sizeof buf - 1 && (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
            len += (size_t)n;
        buf[len] = 0;
        close(fds[0]);
        while (waitpid(pid, NULL, 0) < 0) {
        }
        lat[i] = now() - atof(buf);
    }
    for (int i = 0; i < idle; i++)
        kill(idle_pids[i], SIGKILL);
    for (int i = 0; i < idle; i++)
        waitpid(idle_pids[i], NULL, 0);
    qsort(lat, (size_t)runs, sizeof *lat, cmp);
    int p99 = (runs * 99 + 99) / 100 - 1;
    printf("%.9f %.9f\n", lat[(runs - 1) / 2], lat[p99 < runs ? p99 : runs - 1]);
    free(idle_pids);
    free(lat);
    return 0;
}
