/* The bare-C limit for capturing a child's output whole: `dd if=/dev/zero bs=1M
 * count=MIB` on a pipe, read into one buffer that grows (realloc: mremap for big
 * blocks) until EOF, as a capture must keep every byte. Prints the elapsed seconds.
 *   capture MIB */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: capture MIB\n");
        return 2;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "dd if=/dev/zero bs=1M count=%d 2>/dev/null", atoi(argv[1]));
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 1;
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - len < (1 << 16)) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                return 1;
            buf = nb;
        }
        ssize_t n = read(fileno(f), buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    pclose(f);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (len != (size_t)atoi(argv[1]) << 20)
        return 1;
    printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    free(buf);
    return 0;
}
