/* Sleeps ARG milliseconds, prints its CLOCK_MONOTONIC time in seconds, exits:
 * the parent's detection time minus this is the exit-detection latency. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct timespec ts;
    long ms = argc > 1 ? atol(argv[1]) : 0;
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("%.9f\n", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    fflush(stdout);
    _exit(0);
}
