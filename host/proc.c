#include "proc.h"

#include "bigmem.h"
#include "clock.h"
#include "evloop.h"
#include "orphans.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_MIN 4096
#define DEFAULT_PIPE_SIZE 65536
#define PIPE_SIZE (1 << 20)

void proc_engine_init(proc_engine *e) { memset(e, 0, sizeof *e); }

int proc_global_init(void)
{
    /* Orphaned grandchildren are re-parented to us, so the final clean-up finds them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int rc = orphans_init();
    return rc ? rc : evloop_init();
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void proc_free(proc *p)
{
    close_fd(&p->fd_in);
    close_fd(&p->fd_out);
    close_fd(&p->fd_err);
    free(p->name);
    free(p->command);
    free(p->stdin_data);
    bigmem_realloc(p->out.data, p->out.cap, 0);
    bigmem_realloc(p->err.data, p->err.cap, 0);
    free(p);
}

proc *proc_find(proc_engine *e, const char *name)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->procs[i]->name, name) == 0)
            return e->procs[i];
    return NULL;
}

int proc_resolve(const char *file, const char *path_env, char *buf, size_t len)
{
    struct stat st;
    int err = ENOENT;
    if (!*file)
        return ENOENT;
    if (strchr(file, '/')) {
        if (snprintf(buf, len, "%s", file) >= (int)len)
            return ENAMETOOLONG;
        if (stat(buf, &st) != 0)
            return errno;
        if (S_ISDIR(st.st_mode))
            return EISDIR;
        return access(buf, X_OK) == 0 ? 0 : errno;
    }
    if (!path_env)
        path_env = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path_env;; p++) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        int n = dlen ? snprintf(buf, len, "%.*s/%s", (int)dlen, p, file) : snprintf(buf, len, "%s", file);
        if (n > 0 && n < (int)len && stat(buf, &st) == 0 && !S_ISDIR(st.st_mode)) {
            if (access(buf, X_OK) == 0)
                return 0;
            err = EACCES;
        }
        if (!end)
            break;
        p = end;
    }
    return err;
}

/* What the child does between clone and exec. It may share our memory
 * (CLONE_VM) until exec, so it only makes system calls; a failure goes through
 * errpipe. */
struct child_args {
    const proc_spec *s;
    int in, out, err, errpipe;
    pid_t parent;
    sigset_t mask;
};

/* errno (two bytes) and the failed step, then exit. */
static void child_fail(struct child_args *a, const char *step)
{
    int e = errno;
    char msg[16];
    msg[0] = (char)(e & 0xff);
    msg[1] = (char)((e >> 8) & 0xff);
    size_t n = strlen(step);
    if (n > sizeof msg - 2)
        n = sizeof msg - 2;
    memcpy(msg + 2, step, n);
    if (write(a->errpipe, msg, n + 2) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

static int move_fd(int from, int to)
{
    if (from == to)
        return fcntl(to, F_SETFD, 0);
    return dup2(from, to) < 0 ? -1 : 0;
}

static int child_main(void *arg)
{
    struct child_args *a = arg;
    evloop_reset_child_signals();
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->parent)
        _exit(127);
    if (a->s->cwd && chdir(a->s->cwd) != 0)
        child_fail(a, "chdir");
    /* A pipe end that sits on 0..2 (hplua was started with a standard stream
     * closed) is first moved clear, so the dup2s cannot clobber one another. */
    int in = a->in, out = a->out, err = a->err;
    if (in < 3)
        in = fcntl(in, F_DUPFD_CLOEXEC, 3);
    if (out < 3)
        out = fcntl(out, F_DUPFD_CLOEXEC, 3);
    if (err < 3)
        err = err == a->out ? out : fcntl(err, F_DUPFD_CLOEXEC, 3);
    if (in < 0 || out < 0 || err < 0 || move_fd(in, 0) || move_fd(out, 1) || move_fd(err, 2))
        child_fail(a, "dup2");
    sigprocmask(SIG_SETMASK, &a->mask, NULL);
    extern char **environ;
    execve(a->s->path, a->s->argv, a->s->envp ? a->s->envp : environ);
    child_fail(a, "exec");
    return 127;
}

static pid_t spawn_child(struct child_args *a)
{
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitizers' interceptors must not run in a child that shares our memory. */
    pid_t pid = fork();
    if (pid == 0)
        child_main(a);
    return pid;
#else
    static char stack[64 * 1024] __attribute__((aligned(16)));
    return clone(child_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
#endif
}

static char *join_argv(char *const *argv)
{
    size_t len = 1;
    for (char *const *a = argv; *a; a++)
        len += strlen(*a) + 1;
    char *s = malloc(len), *q = s;
    if (!s)
        return NULL;
    for (char *const *a = argv; *a; a++) {
        size_t n = strlen(*a);
        if (q != s)
            *q++ = ' ';
        memcpy(q, *a, n);
        q += n;
    }
    *q = 0;
    return s;
}

/* Makes room for one more pointer in an array that doubles. */
static int grow(proc ***arr, size_t *cap, size_t used)
{
    if (used < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    proc **na = realloc(*arr, ncap * sizeof *na);
    if (!na)
        return ENOMEM;
    *arr = na;
    *cap = ncap;
    return 0;
}

/* Records p; room in the live array is made now so that the start cannot fail
 * after the spawn. */
static int push_proc(proc_engine *e, proc *p)
{
    if (grow(&e->live, &e->live_cap, e->running) || grow(&e->procs, &e->cap, e->n))
        return ENOMEM;
    e->procs[e->n++] = p;
    return 0;
}

/* Standard input of a child that is given none: /dev/null, opened once. */
static int devnull(void)
{
    static int fd = -1;
    if (fd < 0)
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd;
}

int proc_start(proc_engine *e, const proc_spec *s, proc **out, char *err, size_t errlen)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, pfail[2] = {-1, -1};
    int rc = 0;
    orphans_watchdog_start();
    proc *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    p->fd_in = p->fd_out = p->fd_err = -1;
    p->name = strdup(s->name);
    p->command = s->command ? strdup(s->command) : join_argv(s->argv);
    if (s->stdin_len) {
        p->stdin_data = malloc(s->stdin_len);
        if (p->stdin_data)
            memcpy(p->stdin_data, s->stdin_data, s->stdin_len);
        p->stdin_len = s->stdin_len;
    }
    if (!p->name || !p->command || (s->stdin_len && !p->stdin_data) || push_proc(e, p)) {
        proc_free(p);
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    if ((s->stdin_len && pipe2(pin, O_CLOEXEC)) || (!s->stdin_len && devnull() < 0) || pipe2(pout, O_CLOEXEC) ||
        (!s->merge_stderr && pipe2(perr, O_CLOEXEC)) || pipe2(pfail, O_CLOEXEC)) {
        rc = errno;
        snprintf(err, errlen, "cannot create pipes: %s", strerror(rc));
        goto fail;
    }
    struct child_args a = {s, s->stdin_len ? pin[0] : devnull(), pout[1], s->merge_stderr ? pout[1] : perr[1],
                           pfail[1], getpid(), {{0}}};
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &a.mask);
    p->start_mono = clock_mono();
    p->start_wall = clock_wall();
    pid_t pid = spawn_child(&a);
    rc = errno;
    sigprocmask(SIG_SETMASK, &a.mask, NULL);
    if (pid < 0) {
        snprintf(err, errlen, "cannot start process: %s", strerror(rc));
        goto fail;
    }
    /* Failures between clone and exec come back through the close-on-exec pipe
     * (the memory CLONE_VM shares cannot be relied on: valgrind and the ASan
     * build run the child as a fork). EOF means the exec succeeded. */
    close_fd(&pfail[1]);
    char msg[16];
    ssize_t n;
    do
        n = read(pfail[0], msg, sizeof msg);
    while (n < 0 && errno == EINTR);
    if (n >= 2) {
        rc = (unsigned char)msg[0] | (unsigned char)msg[1] << 8;
        int slen = (int)n - 2;
        if (slen == 4 && memcmp(msg + 2, "exec", 4) == 0)
            snprintf(err, errlen, "%s", strerror(rc));
        else
            snprintf(err, errlen, "%.*s: %s", slen, msg + 2, strerror(rc));
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        goto fail;
    }
    rc = 0;
    p->pid = pid;
    p->state = PROC_RUNNING;
    p->timeout = s->timeout;
    p->fd_in = pin[1];
    p->fd_out = pout[0];
    p->fd_err = perr[0];
    pin[1] = pout[0] = perr[0] = -1;
    fcntl(p->fd_out, F_SETFL, O_NONBLOCK);
    if (p->fd_err >= 0)
        fcntl(p->fd_err, F_SETFL, O_NONBLOCK);
    if (p->fd_in >= 0)
        fcntl(p->fd_in, F_SETFL, O_NONBLOCK);
    e->live[e->running++] = p; /* room was made before the spawn */
    *out = p;
fail:
    close_fd(&pin[0]);
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&pout[1]);
    close_fd(&perr[0]);
    close_fd(&perr[1]);
    close_fd(&pfail[0]);
    close_fd(&pfail[1]);
    if (rc) {
        e->n--;
        proc_free(p);
    }
    return rc;
}

/* Reads what is available; returns true when something was read. Closes at EOF.
 * Buffers start small and double; a pipe found full is enlarged once, so a child
 * that writes a lot is read in big gulps. */
static bool read_pipe(int *fd, proc_buf *b)
{
    bool got = false;
    while (*fd >= 0) {
        if (b->cap - b->len < READ_MIN) {
            size_t cap = b->cap ? b->cap * 2 : READ_MIN * 4;
            char *nd = bigmem_realloc(b->data, b->cap, cap);
            if (!nd)
                return got; /* keep the data we have; try again next turn */
            b->data = nd;
            b->cap = cap;
        }
        ssize_t n = read(*fd, b->data + b->len, b->cap - b->len - 1);
        if (n > 0) {
            b->len += (size_t)n;
            b->data[b->len] = 0;
            got = true;
            if (n >= DEFAULT_PIPE_SIZE && !b->big_pipe) {
                b->big_pipe = true;
                fcntl(*fd, F_SETPIPE_SZ, PIPE_SIZE);
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        close_fd(fd);
    }
    return got;
}

static void write_stdin(proc *p)
{
    while (p->fd_in >= 0 && p->stdin_off < p->stdin_len) {
        ssize_t n = write(p->fd_in, p->stdin_data + p->stdin_off, p->stdin_len - p->stdin_off);
        if (n > 0)
            p->stdin_off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            return;
        else
            break; /* EPIPE: the child does not read its input */
    }
    close_fd(&p->fd_in);
}

static void mark_exited(proc_engine *e, proc *p, int status, const struct rusage *ru)
{
    p->max_rss_kb = ru ? ru->ru_maxrss : 0;
    p->end_mono = clock_mono();
    p->end_wall = clock_wall();
    p->state = PROC_EXITED;
    if (WIFEXITED(status)) {
        p->exit_code = WEXITSTATUS(status);
        p->term_signal = 0;
    } else {
        p->exit_code = -1;
        p->term_signal = WTERMSIG(status);
    }
    /* Everything the child wrote is in the pipes now; a grandchild that holds
     * them open must not keep us waiting, so take what is there and close. */
    read_pipe(&p->fd_out, &p->out);
    read_pipe(&p->fd_err, &p->err);
    close_fd(&p->fd_out);
    close_fd(&p->fd_err);
    close_fd(&p->fd_in);
    p->kill_at = 0;
    for (size_t i = 0; i < e->running; i++)
        if (e->live[i] == p) {
            e->live[i] = e->live[--e->running];
            break;
        }
    e->unreported++;
}

static bool reap(proc_engine *e)
{
    bool any = false;
    for (size_t i = e->running; i-- > 0;) { /* backwards: mark_exited removes live[i] */
        proc *p = e->live[i];
        int status;
        struct rusage ru;
        pid_t r = wait4(p->pid, &status, WNOHANG, &ru);
        if (r == p->pid) {
            mark_exited(e, p, status, &ru);
            any = true;
        }
    }
    return any;
}

void proc_terminate(proc *p, double grace)
{
    if (p->state != PROC_RUNNING)
        return;
    p->terminated = true;
    kill(-p->pid, SIGTERM);
    kill(p->pid, SIGTERM);
    double at = clock_mono() + (grace > 0 ? grace : 0);
    if (!p->kill_at || at < p->kill_at)
        p->kill_at = at;
    if (grace <= 0) {
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
    }
}

/* Timeouts and SIGKILL escalation; returns the nearest pending deadline (0: none). */
static double check_deadlines(proc_engine *e, double now)
{
    double next = 0;
    for (size_t i = 0; i < e->running; i++) {
        proc *p = e->live[i];
        if (p->timeout > 0 && !p->timed_out) {
            double due = p->start_mono + p->timeout;
            if (now >= due) {
                p->timed_out = true;
                proc_terminate(p, 3.0);
            } else if (!next || due < next) {
                next = due;
            }
        }
        if (p->kill_at) {
            if (now >= p->kill_at) {
                kill(-p->pid, SIGKILL);
                kill(p->pid, SIGKILL);
            } else if (!next || p->kill_at < next) {
                next = p->kill_at;
            }
        }
    }
    return next;
}

int proc_poll(proc_engine *e, double timeout, int extra_fd, short extra_events, short *extra_revents)
{
    struct pollfd stackfds[64], *fds = stackfds;
    size_t cap = 2 + e->running * 3, nfds = 0;
    int ev = 0;
    if (extra_revents)
        *extra_revents = 0;
    if (cap > 64) {
        fds = malloc(cap * sizeof *fds);
        if (!fds) {
            fds = stackfds;
            cap = 64;
        }
    }
    fds[nfds++] = (struct pollfd){evloop_fd(), POLLIN, 0};
    if (extra_fd >= 0)
        fds[nfds++] = (struct pollfd){extra_fd, extra_events, 0};
    for (size_t i = 0; i < e->running && nfds + 3 <= cap; i++) {
        proc *p = e->live[i];
        if (p->fd_out >= 0)
            fds[nfds++] = (struct pollfd){p->fd_out, POLLIN, 0};
        if (p->fd_err >= 0)
            fds[nfds++] = (struct pollfd){p->fd_err, POLLIN, 0};
        if (p->fd_in >= 0)
            fds[nfds++] = (struct pollfd){p->fd_in, POLLOUT, 0};
    }
    double now = clock_mono(), next = check_deadlines(e, now);
    if (next && (timeout < 0 || next - now < timeout))
        timeout = next - now;
    int ms = timeout < 0 ? -1 : (int)(timeout * 1000.0 + 0.999);
    int n = poll(fds, nfds, ms);
    if (n < 0 && errno != EINTR) {
        if (fds != stackfds)
            free(fds);
        return 0;
    }
    if (n > 0) {
        size_t k = 1;
        if (fds[0].revents) {
            int bits = evloop_drain();
            if (bits & EVLOOP_INTERRUPT)
                ev |= PROC_EV_INTERRUPT;
        }
        if (extra_fd >= 0) {
            if (fds[1].revents) {
                ev |= PROC_EV_EXTRA;
                if (extra_revents)
                    *extra_revents = fds[1].revents;
            }
            k = 2;
        }
        for (; k < nfds; k++) {
            if (!fds[k].revents)
                continue;
            for (size_t i = 0; i < e->running; i++) {
                proc *p = e->live[i];
                if (p->fd_out == fds[k].fd) {
                    if (read_pipe(&p->fd_out, &p->out))
                        ev |= PROC_EV_DATA;
                } else if (p->fd_err == fds[k].fd) {
                    if (read_pipe(&p->fd_err, &p->err))
                        ev |= PROC_EV_DATA;
                } else if (p->fd_in == fds[k].fd) {
                    write_stdin(p);
                } else {
                    continue;
                }
                break;
            }
        }
    }
    if (fds != stackfds)
        free(fds);
    /* Reaping on every turn is cheap and immune to a lost SIGCHLD byte. */
    if (e->running && reap(e))
        ev |= PROC_EV_EXIT;
    check_deadlines(e, clock_mono());
    return ev;
}

static bool engine_owns(pid_t pid, void *ud)
{
    proc_engine *e = ud;
    for (size_t i = 0; i < e->running; i++)
        if (e->live[i]->pid == pid)
            return true;
    return false;
}

void proc_terminate_everything(proc_engine *e, double grace)
{
    for (size_t i = 0; i < e->running; i++)
        proc_terminate(e->live[i], grace);
    orphans_signal(SIGTERM);
    double end = clock_mono() + grace;
    while (e->running && clock_mono() < end)
        proc_poll(e, end - clock_mono(), -1, 0, NULL);
    for (size_t i = 0; i < e->running; i++) {
        kill(-e->live[i]->pid, SIGKILL);
        kill(e->live[i]->pid, SIGKILL);
    }
    /* Until a scan of /proc finds no descendant: one snapshot would miss what a
     * forker starts meanwhile. */
    orphans_kill_all(10.0, engine_owns, e);
    end = clock_mono() + 5.0;
    while (e->running && clock_mono() < end)
        proc_poll(e, 0.05, -1, 0, NULL);
    orphans_kill_all(1.0, engine_owns, e);
}

void proc_engine_free(proc_engine *e)
{
    if (e->running)
        proc_terminate_everything(e, 1.0);
    for (size_t i = 0; i < e->n; i++)
        proc_free(e->procs[i]);
    free(e->procs);
    free(e->live);
    orphans_clean_exit();
    memset(e, 0, sizeof *e);
}
