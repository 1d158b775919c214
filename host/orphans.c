#include "orphans.h"

#include "clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The watchdog: a small process forked before the first child, holding the read
 * end of a pipe. When the pipe reaches EOF without a clean-exit note (hplua died
 * without cleaning up: SIGKILL) it kills every process that carries this run's
 * token: every descendant inherits HPLUA_RUNS, which lists a token per hplua
 * above it. PR_SET_PDEATHSIG alone would only reach the direct children, not a
 * shell's grandchildren or a daemon that left its process group. Nothing is sent
 * per child, so starting a child costs the watchdog nothing. */
static pid_t watchdog_pid;
static int watchdog_fd = -1;
static char run_token[64];

static bool spawned;

const char *orphans_token(void) { return run_token; }
void orphans_note_spawn(void) { spawned = true; }
bool orphans_spawned(void) { return spawned; }
pid_t orphans_watchdog_pid(void) { return watchdog_pid; }

/* Helpers of hplua's own (the history recorder) that the sweeps leave alone. */
#define SPARED_MAX 8
static pid_t spared[SPARED_MAX];

void orphans_spare(pid_t pid, bool on)
{
    for (int i = 0; i < SPARED_MAX; i++) {
        if (on ? spared[i] == 0 : spared[i] == pid) {
            spared[i] = on ? pid : 0;
            return;
        }
    }
}

bool orphans_is_spared(pid_t pid)
{
    if (pid == watchdog_pid)
        return true;
    for (int i = 0; i < SPARED_MAX; i++)
        if (spared[i] == pid)
            return true;
    return false;
}

int orphans_init(void)
{
    if (run_token[0])
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(run_token, sizeof run_token, "hplua-%d-%lld%06ld", (int)getpid(), (long long)ts.tv_sec, ts.tv_nsec / 1000);
    const char *old = getenv("HPLUA_RUNS");
    size_t olen = old ? strlen(old) : 0;
    char *value = malloc(olen + strlen(run_token) + 2);
    if (!value)
        return ENOMEM;
    if (olen)
        sprintf(value, "%s:%s", old, run_token);
    else
        strcpy(value, run_token);
    int rc = setenv("HPLUA_RUNS", value, 1) == 0 ? 0 : errno;
    free(value);
    return rc;
}

/* Reads a whole /proc file into *buf (grown as needed); returns its length or -1. */
static ssize_t read_whole(const char *path, char **buf, size_t *cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        if (*cap - len < 4096) {
            size_t ncap = *cap ? *cap * 2 : 65536;
            char *nb = realloc(*buf, ncap);
            if (!nb)
                break;
            *buf = nb;
            *cap = ncap;
        }
        ssize_t n = read(fd, *buf + len, *cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    return (ssize_t)len;
}

/* Is token one of the entries of HPLUA_RUNS=a:b:c in the NUL-separated environ? */
static bool environ_holds(const char *env, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    const char *end = env + len;
    for (const char *p = env; p < end;) {
        const char *q = memchr(p, 0, (size_t)(end - p));
        size_t elen = q ? (size_t)(q - p) : (size_t)(end - p);
        if (elen > 11 && memcmp(p, "HPLUA_RUNS=", 11) == 0) {
            const char *v = p + 11, *vend = p + elen;
            while (v < vend) {
                const char *c = memchr(v, ':', (size_t)(vend - v));
                size_t n = c ? (size_t)(c - v) : (size_t)(vend - v);
                if (n == tlen && memcmp(v, token, tlen) == 0)
                    return true;
                v += n + 1;
            }
        }
        p += elen + 1;
    }
    return false;
}

bool orphans_environ_has(pid_t pid, const char *token)
{
    static char *buf;
    static size_t cap;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    ssize_t n = read_whole(path, &buf, &cap);
    return n > 0 && environ_holds(buf, (size_t)n, token);
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

size_t orphans_kill_token_holders(const char *token, double limit)
{
    pid_t self = getpid();
    double end = clock_mono() + limit;
    size_t found;
    do {
        found = 0;
        DIR *d = opendir("/proc");
        if (!d)
            return 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] < '1' || de->d_name[0] > '9')
                continue;
            pid_t pid = (pid_t)atoi(de->d_name);
            if (pid == self || !orphans_environ_has(pid, token))
                continue;
            found++;
            /* A group led by a holder goes at once: a forker cannot outrun that. */
            if (getpgid(pid) == pid)
                kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
        closedir(d);
        if (found)
            pause_ms(2); /* let the kernel finish them before the next scan */
    } while (found && clock_mono() < end);
    return found;
}

static void watchdog_main(int fd)
{
    char buf[256];
    ssize_t got;
    bool clean = false;
    /* Its own session: a SIGKILL of hplua's whole process group (timeout -s KILL,
     * kill -9 -PGID, a CI runner) must not take the watchdog with it. */
    setsid();
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Hold no other descriptor: a reader of hplua's stdout must see EOF when hplua ends. */
    int null_fd = open("/dev/null", O_RDWR);
    for (int i = 0; i < 3; i++)
        if (null_fd >= 0 && null_fd != i)
            dup2(null_fd, i);
    /* keep only the pipe, as descriptor 3 */
    if (fd != 3 && dup2(fd, 3) == 3)
        fd = 3;
    close_range(4, ~0U, 0);
    while ((got = read(fd, buf, sizeof buf)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (memchr(buf, 'c', (size_t)got))
            clean = true; /* hplua has ended every descendant itself */
    }
    if (!clean)
        orphans_kill_token_holders(run_token, 30.0);
    _exit(0);
}

void orphans_watchdog_start(void)
{
    int fds[2];
    if (watchdog_fd >= 0 || orphans_init() != 0 || pipe2(fds, O_CLOEXEC) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        watchdog_main(fds[0]);
    }
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return;
    }
    watchdog_pid = pid;
    watchdog_fd = fds[1];
}

void orphans_clean_exit(void)
{
    if (watchdog_fd >= 0 && write(watchdog_fd, "c", 1) < 0) {
        /* the watchdog is gone already */
    }
}

/* ---- the end-of-run sweep ---- */

typedef struct {
    pid_t pid, ppid, pgid;
    bool zombie;
} proc_entry;

static int by_ppid(const void *a, const void *b)
{
    pid_t x = ((const proc_entry *)a)->ppid, y = ((const proc_entry *)b)->ppid;
    return (x > y) - (x < y);
}

/* Every descendant of ours (parents before children), as a malloc'd array. */
static proc_entry *list_descendants(size_t *count)
{
    size_t cap = 1024, n = 0;
    proc_entry *all = malloc(cap * sizeof *all);
    DIR *d = opendir("/proc");
    *count = 0;
    if (!all || !d) {
        free(all);
        if (d)
            closedir(d);
        return NULL;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        char path[300], buf[512];
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = 0;
        char *rp = strrchr(buf, ')');
        char state;
        int ppid, pgid;
        if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgid) != 3)
            continue;
        if (n == cap) {
            proc_entry *na = realloc(all, cap * 2 * sizeof *all);
            if (!na)
                break;
            all = na;
            cap *= 2;
        }
        all[n++] = (proc_entry){(pid_t)atoi(de->d_name), ppid, pgid, state == 'Z' || state == 'X'};
    }
    closedir(d);
    qsort(all, n, sizeof *all, by_ppid);
    /* Breadth first from ourselves: out[] grows behind the scan. */
    proc_entry *out = malloc((n ? n : 1) * sizeof *out);
    if (!out) {
        free(all);
        return NULL;
    }
    size_t found = 0;
    pid_t self = getpid();
    for (size_t scan = 0;; scan++) {
        pid_t parent = scan == 0 ? self : out[scan - 1].pid;
        if (scan > found)
            break;
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (all[mid].ppid < parent)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo; i < n && all[i].ppid == parent; i++)
            out[found++] = all[i];
    }
    free(all);
    *count = found;
    return out;
}

size_t orphans_signal(int sig)
{
    size_t n, sent = 0;
    proc_entry *list = list_descendants(&n);
    for (size_t i = 0; i < n; i++)
        if (!list[i].zombie && !orphans_is_spared(list[i].pid) && kill(list[i].pid, sig) == 0)
            sent++;
    free(list);
    return sent;
}

size_t orphans_kill_all(double limit, bool (*owned)(pid_t pid, void *ud), void *ud)
{
    double end = clock_mono() + limit;
    pid_t self = getpid();
    for (;;) {
        size_t n, live = 0;
        proc_entry *list = list_descendants(&n);
        for (size_t i = 0; i < n; i++) {
            proc_entry *p = &list[i];
            if (orphans_is_spared(p->pid))
                continue;
            if (p->zombie) {
                if (p->ppid == self && !(owned && owned(p->pid, ud)))
                    waitpid(p->pid, NULL, WNOHANG);
                continue;
            }
            live++;
            /* the whole group a descendant leads, at once: a forker cannot outrun that */
            if (p->pgid == p->pid)
                kill(-p->pid, SIGKILL);
            kill(p->pid, SIGKILL);
        }
        free(list);
        if (!live || clock_mono() >= end)
            return live;
        pause_ms(2);
    }
}
