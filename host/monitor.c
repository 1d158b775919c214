/* The monitor (monitor.h): one POSIX timer, a step in its signal handler, and the
 * last resort, which runs inside that handler and never returns. Everything the
 * handler calls is async-signal-safe (system calls and plain loops; no stdio, no
 * malloc), except what the forked child does. */
#include "monitor.h"
#include "clock.h"
#include "evloop.h"
#include "orphans.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_PENDING 0.010  /* the hook re-armed this often while a stop is due */
#define RESCUE_WAIT 2.0     /* the forked child writing the reports */
#define TERM_GRACE 0.5      /* descendants between SIGTERM and SIGKILL */

static struct {
    int ready;
    timer_t timer;
    monitor_config cfg;
    /* written by the main code, read by the handler (same thread) */
    volatile sig_atomic_t armed, sched; /* sched: the timer is set */
    volatile unsigned gen, interrupts_at_arm;
    volatile double deadline;
    /* the handler's own */
    unsigned seen_gen;
    double int_seen, first_int;
} mon;

static void say(const char *text)
{
    if (write(2, text, strlen(text)) < 0) {
        /* nowhere to report it */
    }
}

static void schedule(double at)
{
    if (!mon.ready)
        return;
    mon.sched = at > 0;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (at > 0) {
        its.it_value.tv_sec = (time_t)at;
        its.it_value.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    timer_settime(mon.timer, TIMER_ABSTIME, &its, NULL);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- descendants, from /proc, without malloc or stdio ---- */

static char *put_int(char *p, long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void proc_path(char *buf, long pid, const char *leaf)
{
    char *p = buf;
    memcpy(p, "/proc/", 6);
    p = put_int(p + 6, pid);
    *p++ = '/';
    size_t n = strlen(leaf);
    memcpy(p, leaf, n + 1);
}

static long parent_of(long pid)
{
    char path[64], buf[512];
    proc_path(path, pid, "stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return -1;
    buf[len] = 0;
    char *p = strrchr(buf, ')'); /* "pid (comm) S ppid ..." */
    if (!p || !p[1] || !p[2] || !p[3])
        return -1;
    p += 4;
    long v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return v;
}

/* Every descendant of this process, parents before children. */
static size_t descendants(pid_t *out, size_t max)
{
    enum { CAP = 32768 };
    static pid_t pid_of[CAP], ppid_of[CAP];
    static char dents[16384];
    size_t n = 0, found = 0;
    int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return 0;
    ssize_t got;
    while ((got = getdents64(dir, dents, sizeof dents)) > 0) {
        for (ssize_t off = 0; off < got;) {
            struct dirent64 *de = (struct dirent64 *)(dents + off);
            off += de->d_reclen;
            const char *s = de->d_name;
            if (*s < '1' || *s > '9' || n == CAP)
                continue;
            long pid = 0;
            while (*s >= '0' && *s <= '9')
                pid = pid * 10 + (*s++ - '0');
            long ppid = parent_of(pid);
            if (*s || ppid < 0)
                continue;
            pid_of[n] = (pid_t)pid;
            ppid_of[n++] = (pid_t)ppid;
        }
    }
    close(dir);
    pid_t self = getpid();
    for (size_t i = 0; i < n; i++)
        if (ppid_of[i] == self && found < max)
            out[found++] = pid_of[i];
    for (size_t scan = 0; scan < found; scan++)
        for (size_t i = 0; i < n; i++)
            if (ppid_of[i] == out[scan] && found < max)
                out[found++] = pid_of[i];
    return found;
}

/* Every descendant but the ones hplua spares (its watchdog, which ignores SIGTERM and
 * ends by itself when this process is gone; the history recorder, which writes what
 * it was sent and ends at the end of its pipe). */
static size_t others(pid_t *pids, size_t max)
{
    size_t n = descendants(pids, max), k = 0;
    for (size_t i = 0; i < n; i++)
        if (!orphans_is_spared(pids[i]))
            pids[k++] = pids[i];
    return k;
}

static void reap_all(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* SIGTERM to every descendant and its process group, SIGKILL to what is left
 * after the grace, reaping all the while (this process is their subreaper). */
static void end_descendants(void)
{
    static pid_t pids[4096];
    size_t n = others(pids, sizeof pids / sizeof pids[0]);
    for (size_t i = 0; i < n; i++) {
        kill(-pids[i], SIGTERM); /* a child of the engine leads its own group */
        kill(pids[i], SIGTERM);
    }
    double end = clock_mono() + TERM_GRACE;
    while (n && clock_mono() < end) {
        reap_all();
        sleep_s(0.01);
        n = others(pids, sizeof pids / sizeof pids[0]);
    }
    for (int round = 0; round < 3 && n; round++) {
        for (size_t i = 0; i < n; i++) {
            kill(-pids[i], SIGKILL);
            kill(pids[i], SIGKILL);
        }
        end = clock_mono() + 1.0;
        while (n && clock_mono() < end) {
            reap_all();
            sleep_s(0.005);
            n = others(pids, sizeof pids / sizeof pids[0]);
        }
    }
    reap_all();
}

/* ---- the step and the last resort ---- */

static void last_resort(int reason, const char *why)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* nothing interrupts this any more */
    say("hplua: ");
    say(why);
    say("; test code is stuck where no hook reaches (a C call or a finalizer): ending the run\n");
    pid_t pid = fork();
    if (pid == 0) {
        /* A copy of the process as it was: write the reports. */
        mon.cfg.rescue(reason);
        _exit(0);
    }
    int status = -1;
    if (pid > 0) {
        double end = clock_mono() + RESCUE_WAIT;
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && clock_mono() < end)
            sleep_s(0.005);
        if (r <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            status = -1;
        }
    }
    if (status != 0)
        say("hplua: the reports could not be written after the run got stuck\n");
    end_descendants();
    _exit(2);
}

static void step(void)
{
    mon.sched = 0; /* it fired */
    double now = clock_mono(), other = 0;
    unsigned ints = evloop_interrupts();
    if (ints && !mon.first_int)
        mon.first_int = now;
    if (mon.gen != mon.seen_gen) {
        mon.seen_gen = mon.gen;
        mon.int_seen = 0;
    }
    if (mon.armed) {
        double dl = mon.deadline, since = 0;
        int pending = ints != mon.interrupts_at_arm;
        if (pending && !mon.int_seen)
            mon.int_seen = now;
        if (dl > 0 && now >= dl)
            since = dl;
        if (pending && (!since || mon.int_seen < since))
            since = mon.int_seen;
        if (since) {
            mon.cfg.tick();
            other = now + TICK_PENDING;
            if (now - since >= MONITOR_GRACE)
                last_resort(ints ? MONITOR_INTERRUPT : MONITOR_TIMEOUT,
                            ints ? "an interrupt went unanswered for 2 s" : "a timeout went unanswered for 2 s");
        } else if (dl > 0) {
            other = dl;
        }
    }
    if (mon.first_int) {
        double cap = mon.first_int + MONITOR_HARD_CAP;
        if (now >= cap)
            last_resort(MONITOR_INTERRUPT, "the run did not end within 4 s of SIGINT/SIGTERM");
        if (!other || cap < other)
            other = cap;
    }
    schedule(other);
}

static void on_timer(int sig)
{
    (void)sig;
    int saved = errno;
    step();
    errno = saved;
}

int monitor_init(const monitor_config *c)
{
    if (mon.ready)
        return 0;
    mon.cfg = *c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(c->signal, &sa, NULL) != 0)
        return errno;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = c->signal;
    if (timer_create(CLOCK_MONOTONIC, &ev, &mon.timer) != 0)
        return errno;
    mon.ready = 1;
    return 0;
}

void monitor_stop(void)
{
    if (!mon.ready)
        return;
    mon.ready = 0;
    timer_delete(mon.timer);
    signal(mon.cfg.signal, SIG_IGN); /* a tick already queued finds nothing to do */
}

void monitor_kick(void) { schedule(clock_mono()); }

void monitor_arm(double deadline, unsigned interrupts_at_arm)
{
    mon.deadline = deadline;
    mon.interrupts_at_arm = interrupts_at_arm;
    mon.gen++;
    mon.armed = 1;
    /* The step schedules itself; with no deadline it is not needed, and a timer an
     * earlier call set for its deadline must not reach this one's code. */
    if (deadline > 0 || mon.first_int)
        monitor_kick();
    else if (mon.sched)
        schedule(0);
}

void monitor_disarm(void) { mon.armed = 0; }
