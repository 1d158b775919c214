/* rss FILE COMMAND [ARG ...]: runs COMMAND from this small process and writes to
 * FILE its peak resident memory in KB (as GNU time's %M does) on the first line, and
 * on the second its CPU time: of its own process (ns, from /proc/PID/schedstat, read
 * while it is a zombie, before it is reaped) and with every descendant it reaped (us,
 * wait4's rusage, user + system; the difference is what its children used: a
 * supervisor's own share, measured from outside it); then exits with its status.
 * Linux charges a child with its parent's peak at exec, so a child started straight
 * from the (larger) benchmark harness would carry the harness's peak. */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rss FILE COMMAND [ARG ...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("rss: fork");
        return 2;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[2], argv + 2);
        perror("rss: exec");
        _exit(127);
    }
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
        ;
    char path[64];
    unsigned long long self_ns = 0;
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *s = fopen(path, "r");
    if (!s || fscanf(s, "%llu", &self_ns) != 1)
        fprintf(stderr, "rss: cannot read %s\n", path);
    if (s)
        fclose(s);
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        ;
    long long total_us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
                         ru.ru_stime.tv_usec;
    FILE *f = fopen(argv[1], "w");
    if (f) {
        fprintf(f, "%ld\n%llu %lld\n", ru.ru_maxrss, self_ns, total_us);
        fclose(f);
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
