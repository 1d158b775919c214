/* A helper for the orphan tests: descendants in large numbers, cheaply.
 *   forker many N TAG   forks N children, each in a process group of its own and
 *                       paused, prints READY, then waits. TAG (the test's marker)
 *                       is in every process's command line.
 *   forker bigenv BYTES CMD...  runs CMD with an extra variable of BYTES bytes put
 *                       first in the environment. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int paused_child(void *arg)
{
    (void)arg;
    setpgid(0, 0);
    for (;;)
        pause();
    return 0;
}

/* clone(CLONE_VM): no page tables to copy, so thousands start in a blink even
 * where fork is slow (some virtual machines take 10 ms per fork). */
static int many(int n)
{
    enum { STACK = 16384 };
    char *stacks = malloc((size_t)n * STACK);
    if (!stacks)
        return 1;
    for (int i = 0; i < n; i++) {
        if (clone(paused_child, stacks + (size_t)(i + 1) * STACK, CLONE_VM | SIGCHLD, NULL) < 0) {
            perror("clone");
            return 1;
        }
    }
    printf("READY\n");
    fflush(stdout);
    for (;;)
        pause();
}

/* Variables of up to 100,000 bytes each (one string may not exceed 128 KiB). */
static int bigenv(size_t bytes, char **cmd)
{
    extern char **environ;
    size_t count = 0, parts = bytes / 100000 + 1;
    while (environ[count])
        count++;
    char **env = calloc(count + parts + 1, sizeof *env);
    if (!env)
        return 1;
    for (size_t i = 0; i < parts; i++) {
        size_t len = i + 1 < parts ? 100000 : bytes % 100000;
        char *v = malloc(len + 32);
        if (!v)
            return 1;
        int k = snprintf(v, 32, "HPLUA_BIG%zu=", i);
        memset(v + k, 'x', len);
        v[k + len] = 0;
        env[i] = v;
    }
    memcpy(env + parts, environ, count * sizeof *env);
    execvpe(cmd[0], cmd, env);
    perror("exec");
    return 127;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "many") == 0)
        return many(atoi(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "bigenv") == 0)
        return bigenv((size_t)atol(argv[2]), argv + 3);
    fprintf(stderr, "usage: forker many N TAG | forker bigenv BYTES CMD...\n");
    return 2;
}
