#include "proc.h"

#include "bigmem.h"
#include "clock.h"
#include "evloop.h"
#include "orphans.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define READ_MIN 4096
#define DEFAULT_PIPE_SIZE 65536
#define PIPE_SIZE (1 << 20)
#define STREAM_LIMIT 65536 /* a stream's unread stdout before the engine stops reading it */
#define MAX_EVENTS 256
/* A wait4(-1) walks every child we have (~0.1 us each, more once they outgrow the
 * caches). With pidfds, SIGCHLD is not caught (a caught signal would cut short a
 * driver's usleep or poll in test code): the pidfds report the engine's children
 * at once, and the walk, for orphans we adopted, runs at most every REAP_INTERVAL
 * (every turn while a child without a pidfd runs, whose end then wakes no wait:
 * waits are cut to REAP_INTERVAL), and at least every ORPHAN_WALK while children
 * run (a wait wakes for it). Without pidfds (valgrind), SIGCHLD is caught
 * (every child of ours sends it, exec resets its exit signal) and starts the walk;
 * with REAP_EAGER children running, the walk waits until the loop is about to
 * sleep and REAP_INTERVAL has passed since the last one (at the latest
 * 2 x REAP_INTERVAL). */
#define REAP_EAGER 64
#define REAP_INTERVAL 0.05
#define ORPHAN_WALK 1.0
#define NOT_LISTED SIZE_MAX

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* epoll's data: the proc with the fd's kind in the low bits (procs are 8-aligned). */
enum { PIPE_OUT = 0, PIPE_ERR = 1, PIPE_IN = 2, PIDFD = 3 };
#define KIND_MASK ((uint64_t)7)
#define SELF_PIPE ((uint64_t)4)

void proc_engine_init(proc_engine *e)
{
    memset(e, 0, sizeof *e);
    e->epfd = -1;
}

static bool pidfds(void);

int proc_global_init(void)
{
    /* Orphaned grandchildren are re-parented to us, so the final clean-up finds them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int rc = orphans_init();
    if (!rc)
        rc = evloop_init();
    if (!rc && !pidfds())
        rc = evloop_catch_sigchld();
    return rc;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Buffers keep e->buf_headroom bytes before their data (see proc_engine). */
static int resize_buf(proc_engine *e, proc_buf *b, size_t cap)
{
    size_t hr = e->buf_headroom;
    char *block = bigmem_realloc(b->data ? b->data - hr : NULL, b->data ? b->cap + hr : 0, cap + hr);
    if (!block)
        return ENOMEM;
    b->data = block + hr;
    b->cap = cap;
    return 0;
}

static void free_buf(proc_engine *e, proc_buf *b)
{
    if (b->data)
        bigmem_realloc(b->data - e->buf_headroom, b->cap + e->buf_headroom, 0);
    memset(b, 0, sizeof *b);
}

void proc_buf_given(proc_buf *b)
{
    b->data = NULL;
    b->cap = 0;
    b->given = true;
}

static void proc_free(proc_engine *e, proc *p)
{
    close_fd(&p->fd_pid);
    close_fd(&p->fd_in);
    close_fd(&p->fd_out);
    close_fd(&p->fd_err);
    free(p->name);
    free(p->command);
    free_buf(e, &p->in);
    free_buf(e, &p->out);
    free_buf(e, &p->err);
    free(p);
}

/* ---- indexes: arrays with positions kept in the proc, hash chains ---- */

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

static void list_remove(proc **arr, size_t *n, size_t *idx_of_removed, size_t offset)
{
    size_t i = *idx_of_removed;
    proc *last = arr[--*n];
    arr[i] = last;
    *(size_t *)((char *)last + offset) = i;
    *idx_of_removed = NOT_LISTED;
}

static void live_remove(proc_engine *e, proc *p)
{
    if (p->live_idx != NOT_LISTED)
        list_remove(e->live, &e->running, &p->live_idx, offsetof(proc, live_idx));
}

static void timed_add(proc_engine *e, proc *p)
{
    if (p->timed_idx != NOT_LISTED || grow(&e->timed, &e->timed_cap, e->ntimed))
        return; /* out of memory: the deadline is lost, the end-of-run sweep still holds */
    p->timed_idx = e->ntimed;
    e->timed[e->ntimed++] = p;
}

static void timed_remove(proc_engine *e, proc *p)
{
    if (p->timed_idx != NOT_LISTED)
        list_remove(e->timed, &e->ntimed, &p->timed_idx, offsetof(proc, timed_idx));
}

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static size_t hash_pid(pid_t pid) { return (size_t)pid * 2654435761u; }

/* Doubles a hash table when it holds more entries than buckets. */
static int rehash(proc ***table, size_t *buckets, size_t entries, bool by_pid)
{
    if (entries < *buckets)
        return 0;
    size_t nb = *buckets ? *buckets * 2 : 64;
    proc **nt = calloc(nb, sizeof *nt);
    if (!nt)
        return ENOMEM;
    /* walk the old chains backwards into the new ones so "newest first" holds */
    for (size_t i = 0; i < *buckets; i++) {
        proc *chain = NULL;
        for (proc *p = (*table)[i], *next; p; p = next) { /* reverse the old chain */
            next = by_pid ? p->pid_next : p->name_next;
            if (by_pid)
                p->pid_next = chain;
            else
                p->name_next = chain;
            chain = p;
        }
        for (proc *p = chain, *next; p; p = next) {
            next = by_pid ? p->pid_next : p->name_next;
            size_t b = (by_pid ? hash_pid(p->pid) : hash_str(p->name)) & (nb - 1);
            if (by_pid) {
                p->pid_next = nt[b];
            } else {
                p->name_next = nt[b];
            }
            nt[b] = p;
        }
    }
    free(*table);
    *table = nt;
    *buckets = nb;
    return 0;
}

proc *proc_find(proc_engine *e, const char *name)
{
    if (!e->name_buckets)
        return NULL;
    for (proc *p = e->by_name[hash_str(name) & (e->name_buckets - 1)]; p; p = p->name_next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static proc *find_pid(proc_engine *e, pid_t pid)
{
    if (!e->pid_buckets)
        return NULL;
    for (proc *p = e->by_pid[hash_pid(pid) & (e->pid_buckets - 1)]; p; p = p->pid_next)
        if (p->pid == pid)
            return p;
    return NULL;
}

static void pid_remove(proc_engine *e, proc *p)
{
    if (!e->pid_buckets)
        return;
    for (proc **link = &e->by_pid[hash_pid(p->pid) & (e->pid_buckets - 1)]; *link; link = &(*link)->pid_next)
        if (*link == p) {
            *link = p->pid_next;
            return;
        }
}

/* Room in every index is made before the spawn, so the start cannot fail after it. */
static int reserve(proc_engine *e)
{
    if (grow(&e->live, &e->live_cap, e->running) || grow(&e->procs, &e->cap, e->n) ||
        rehash(&e->by_pid, &e->pid_buckets, e->running + 1, true) ||
        rehash(&e->by_name, &e->name_buckets, e->n + 1, false))
        return ENOMEM;
    if (e->epfd < 0) {
        e->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (e->epfd < 0)
            return errno;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = SELF_PIPE};
        if (evloop_fd() >= 0)
            epoll_ctl(e->epfd, EPOLL_CTL_ADD, evloop_fd(), &ev);
    }
    return 0;
}

static void index_proc(proc_engine *e, proc *p)
{
    e->procs[e->n++] = p;
    p->live_idx = e->running;
    e->live[e->running++] = p;
    size_t b = hash_pid(p->pid) & (e->pid_buckets - 1);
    p->pid_next = e->by_pid[b];
    e->by_pid[b] = p;
    b = hash_str(p->name) & (e->name_buckets - 1);
    p->name_next = e->by_name[b];
    e->by_name[b] = p;
    p->timed_idx = NOT_LISTED;
    if (p->timeout > 0)
        timed_add(e, p);
    if (p->fd_pid < 0)
        e->without_pidfd++;
}

/* ---- epoll ---- */

static void watch(proc_engine *e, proc *p, int which, int fd, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(uintptr_t)p | (uint64_t)which};
    epoll_ctl(e->epfd, op, fd, &ev);
}

static void unwatch_close(proc_engine *e, int *fd)
{
    if (*fd >= 0) {
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, *fd, NULL);
        close_fd(fd);
    }
}

/* ---- start ---- */

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
 * errpipe. in/out/err are -1 where the child inherits hplua's own stream. */
struct child_args {
    const proc_spec *s;
    int in, out, err, errpipe;
    int keep_below; /* the child shares our fd table until it copies fds [0, keep_below) (0: not shared) */
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
    if (from < 0)
        return 0; /* inherited */
    if (from == to)
        return fcntl(to, F_SETFD, 0);
    return dup2(from, to) < 0 ? -1 : 0;
}

/* A pipe end that sits on 0..2 (hplua was started with a standard stream
 * closed) is first moved clear, so the dup2s cannot clobber one another. */
static int clear_of_std(int fd) { return fd >= 0 && fd < 3 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : fd; }

static int child_main(void *arg)
{
    struct child_args *a = arg;
    /* First of all, a table of its own holding only the low descriptors (its pipe
     * ends are among them): copying, and closing at exec, the thousands of pipe
     * ends hplua holds for other children would cost every start O(children). */
    if (a->keep_below && close_range((unsigned)a->keep_below, ~0U, CLOSE_RANGE_UNSHARE) != 0 &&
        unshare(CLONE_FILES) != 0)
        _exit(127); /* nothing else is safe while the table is shared */
    evloop_reset_child_signals();
    if (!(a->s->flags & PROC_KEEP_GROUP))
        setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != a->parent)
        _exit(127);
    if (a->s->cwd && chdir(a->s->cwd) != 0)
        child_fail(a, "chdir");
    int in = clear_of_std(a->in), out = clear_of_std(a->out);
    int err = a->err >= 0 && a->err == a->out ? out : clear_of_std(a->err);
    if ((a->in >= 0 && in < 0) || (a->out >= 0 && out < 0) || (a->err >= 0 && err < 0) || move_fd(in, 0) ||
        move_fd(out, 1) || move_fd(err, 2))
        child_fail(a, "dup2");
    sigprocmask(SIG_SETMASK, &a->mask, NULL);
    extern char **environ;
    execve(a->s->path, a->s->argv, a->s->envp ? a->s->envp : environ);
    child_fail(a, "exec");
    return 127;
}

/* Can children be reaped through pidfds (Linux 5.4: CLONE_PIDFD, waitid P_PIDFD)?
 * A waitid on our own pidfd tells: ECHILD where P_PIDFD is known, EINVAL before.
 * Not under valgrind (3.19 knows no pidfd_open). */
static bool pidfds(void)
{
    static int ok = -1;
    if (ok < 0 && RUNNING_ON_VALGRIND)
        ok = 0;
    if (ok < 0) {
        int saved = errno;
        int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        siginfo_t si;
        ok = fd >= 0 && syscall(SYS_waitid, P_PIDFD, fd, &si, WEXITED | WNOHANG | __WALL, NULL) < 0 && errno == ECHILD;
        if (fd >= 0)
            close(fd);
        errno = saved;
    }
    return ok;
}

/* Starts the child; *pidfd gets its pidfd (-1: none). Its end wakes the loop
 * through the pidfd, and is reaped through it (or by the walk after SIGCHLD,
 * which every child sends, if that comes first). */
static pid_t spawn_child(struct child_args *a, int *pidfd)
{
    *pidfd = -1;
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitizers' interceptors must not run in a child that shares our memory. */
    pid_t pid = fork();
    if (pid == 0)
        child_main(a);
    if (pid > 0 && pidfds()) {
        int saved = errno;
        *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        errno = saved;
    }
    return pid;
#else
    static char stack[64 * 1024] __attribute__((aligned(16)));
    int flags = CLONE_VM | CLONE_VFORK | (a->keep_below ? CLONE_FILES : 0) | SIGCHLD;
    pid_t pid = pidfds() ? clone(child_main, stack + sizeof stack, flags | CLONE_PIDFD, a, pidfd) : -1;
    if (pid < 0 && (!pidfds() || errno == EMFILE || errno == ENFILE)) {
        *pidfd = -1; /* no room for one more fd: a child without a pidfd (reaped by the walk) */
        pid = clone(child_main, stack + sizeof stack, flags, a);
    }
    return pid;
#endif
}

/* A shell needs no quotes around a word made only of these. */
static bool shell_safe(const char *a)
{
    if (!*a)
        return false;
    for (; *a; a++)
        if (!isalnum((unsigned char)*a) && !strchr("_@%+=:,./-", *a))
            return false;
    return true;
}

/* The command line as a POSIX shell would need it typed: every argument that is
 * not a plain word in single quotes (a ' inside as '\''), so a reader of a log sees
 * where each argument begins and ends. */
char *proc_quote_argv(char *const *argv)
{
    size_t len = 1;
    for (char *const *a = argv; *a; a++)
        len += strlen(*a) * 4 + 3;
    char *s = malloc(len), *q = s;
    if (!s)
        return NULL;
    for (char *const *a = argv; *a; a++) {
        if (q != s)
            *q++ = ' ';
        if (shell_safe(*a)) {
            size_t n = strlen(*a);
            memcpy(q, *a, n);
            q += n;
            continue;
        }
        *q++ = '\'';
        for (const char *c = *a; *c; c++) {
            if (*c == '\'') {
                memcpy(q, "'\\''", 4);
                q += 4;
            } else {
                *q++ = *c;
            }
        }
        *q++ = '\'';
    }
    *q = 0;
    return s;
}

/* hplua's own ends of the children's pipes are parked at descriptors from
 * park_base() up, so the low numbers stay free for the next child's ends and a
 * child needs to copy only those (child_main). 0 where the limit of open files
 * is too low to bother. */
static int park_base(void)
{
    static int base = -1;
    if (base < 0) {
        struct rlimit rl;
        /* valgrind runs clone(CLONE_VM|CLONE_VFORK) as a fork, and refuses CLONE_FILES */
        base = !RUNNING_ON_VALGRIND && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 4096 ? 1024 : 0;
    }
    return base;
}

static int park(int fd)
{
    if (fd < 0 || !park_base() || fd >= park_base())
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, park_base());
    if (high < 0)
        return fd;
    close(fd);
    return high;
}

/* Standard input of a child that is given none: /dev/null, opened once. */
static int devnull(void)
{
    static int fd = -1;
    if (fd < 0)
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd;
}

static int copy_in(proc_engine *e, proc_buf *b, const char *data, size_t len)
{
    if (!len)
        return 0;
    if (resize_buf(e, b, len))
        return ENOMEM;
    memcpy(b->data, data, len);
    b->len = len;
    return 0;
}

int proc_start(proc_engine *e, const proc_spec *s, proc **out, char *err, size_t errlen)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, pfail[2] = {-1, -1}, pidfd = -1, out_fd = -1;
    int rc = 0;
    unsigned f = s->flags;
    bool in_pipe = !(f & PROC_INHERIT_STDIN) && (s->stdin_len || (f & PROC_STREAM_STDIN));
    bool out_pipe = !(f & PROC_INHERIT_STDOUT) && !s->output;
    bool err_pipe = !(f & PROC_INHERIT_STDERR) && !(s->merge_stderr && out_pipe) && !s->output;
    orphans_watchdog_start();
    orphans_note_spawn();
    proc *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    p->fd_in = p->fd_out = p->fd_err = p->fd_pid = -1;
    p->live_idx = p->timed_idx = NOT_LISTED;
    p->flags = f;
    p->name = strdup(s->name);
    p->command = s->command ? strdup(s->command) : proc_quote_argv(s->argv);
    if (!p->name || !p->command || copy_in(e, &p->in, s->stdin_data, s->stdin_len) || (rc = reserve(e))) {
        rc = rc ? rc : ENOMEM;
        snprintf(err, errlen, "%s", strerror(rc));
        proc_free(e, p);
        return rc;
    }
    if (s->output && (out_fd = open(s->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rc = errno;
        snprintf(err, errlen, "cannot open %s: %s", s->output, strerror(rc));
        goto fail;
    }
    if ((in_pipe && pipe2(pin, O_CLOEXEC)) || (!in_pipe && !(f & PROC_INHERIT_STDIN) && devnull() < 0) ||
        (out_pipe && pipe2(pout, O_CLOEXEC)) || (err_pipe && pipe2(perr, O_CLOEXEC)) || pipe2(pfail, O_CLOEXEC)) {
        rc = errno;
        snprintf(err, errlen, "cannot create pipes: %s", strerror(rc));
        goto fail;
    }
    struct child_args a = {s,
                           in_pipe ? pin[0] : (f & PROC_INHERIT_STDIN) ? -1 : devnull(),
                           out_fd >= 0 ? out_fd : pout[1],
                           out_fd >= 0 ? out_fd : err_pipe ? perr[1] : (f & PROC_INHERIT_STDERR) ? -1 : pout[1],
                           pfail[1],
                           0,
                           getpid(),
                           {{0}}};
#if !defined(__SANITIZE_ADDRESS__)
    if (park_base()) {
        int top = a.errpipe;
        top = a.in > top ? a.in : top;
        top = a.out > top ? a.out : top;
        top = a.err > top ? a.err : top;
        if (top < park_base())
            a.keep_below = top + 1;
    }
#endif
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &a.mask);
    p->start_mono = clock_mono();
    struct rusage self;
    p->inherited_kb = getrusage(RUSAGE_SELF, &self) == 0 ? self.ru_maxrss : LONG_MAX;
    p->start_wall = clock_wall();
    pid_t pid = spawn_child(&a, &pidfd);
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
        while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {
        }
        goto fail;
    }
    rc = 0;
    p->pid = pid;
    p->state = PROC_RUNNING;
    p->timeout = s->timeout;
    p->fd_in = park(pin[1]);
    p->fd_out = park(pout[0]);
    p->fd_err = park(perr[0]);
    p->fd_pid = park(pidfd);
    pin[1] = pout[0] = perr[0] = pidfd = -1;
    index_proc(e, p); /* room was made before the spawn */
    if (p->fd_out >= 0 || p->fd_err >= 0) {
        p->piped = true;
        e->piped++;
    }
    if (p->fd_out >= 0) {
        fcntl(p->fd_out, F_SETFL, O_NONBLOCK);
        watch(e, p, PIPE_OUT, p->fd_out, EPOLLIN, EPOLL_CTL_ADD);
    }
    if (p->fd_err >= 0) {
        fcntl(p->fd_err, F_SETFL, O_NONBLOCK);
        watch(e, p, PIPE_ERR, p->fd_err, EPOLLIN, EPOLL_CTL_ADD);
    }
    if (p->fd_in >= 0) {
        fcntl(p->fd_in, F_SETFL, O_NONBLOCK);
        watch(e, p, PIPE_IN, p->fd_in, p->in.len ? EPOLLOUT : 0, EPOLL_CTL_ADD);
    }
    if (p->fd_pid >= 0)
        watch(e, p, PIDFD, p->fd_pid, EPOLLIN, EPOLL_CTL_ADD);
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
    close_fd(&pidfd);
    close_fd(&out_fd);
    if (rc)
        proc_free(e, p);
    return rc;
}

/* ---- the loop ---- */

static void count_lines(proc_buf *b, const char *from, size_t n)
{
    const char *end = from + n;
    while (from < end && (from = memchr(from, '\n', (size_t)(end - from))) != NULL) {
        b->lines++;
        from++;
    }
}

/* Reads what is available; closes at EOF. Buffers start small and double; a
 * pipe found full is enlarged once, so a child that writes a lot is read in big
 * gulps. A stream's stdout pauses once its reader lags STREAM_LIMIT bytes. */
static void read_pipe(proc_engine *e, proc *p, int which)
{
    int *fd = which == PIPE_OUT ? &p->fd_out : &p->fd_err;
    proc_buf *b = which == PIPE_OUT ? &p->out : &p->err;
    bool stream = which == PIPE_OUT && (p->flags & PROC_STREAM_STDOUT);
    while (*fd >= 0) {
        if (stream && b->len - b->off >= STREAM_LIMIT) {
            if (!p->out_paused) {
                p->out_paused = true;
                watch(e, p, PIPE_OUT, *fd, 0, EPOLL_CTL_MOD);
            }
            return;
        }
        if (b->cap - b->len < READ_MIN) {
            if (resize_buf(e, b, b->cap ? b->cap * 2 : READ_MIN * 4))
                return; /* keep the data we have; try again next turn */
        }
        ssize_t n = read(*fd, b->data + b->len, b->cap - b->len - 1);
        if (n > 0) {
            count_lines(b, b->data + b->len, (size_t)n);
            b->len += (size_t)n;
            b->last = b->data[b->len - 1];
            b->total += (size_t)n;
            b->data[b->len] = 0;
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
        unwatch_close(e, fd);
    }
}

static void write_stdin(proc_engine *e, proc *p)
{
    while (p->fd_in >= 0 && p->in_off < p->in.len) {
        ssize_t n = write(p->fd_in, p->in.data + p->in_off, p->in.len - p->in_off);
        if (n > 0)
            p->in_off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            return; /* EPOLLOUT is on */
        else {
            unwatch_close(e, &p->fd_in); /* EPIPE: the child does not read its input */
            return;
        }
    }
    p->in.len = p->in_off = 0;
    if (p->fd_in >= 0) {
        if ((p->flags & PROC_STREAM_STDIN) && !p->in_closing)
            watch(e, p, PIPE_IN, p->fd_in, 0, EPOLL_CTL_MOD); /* wait for more */
        else
            unwatch_close(e, &p->fd_in);
    }
}

/* exit_code -1 and term_signal 0: the status is unknown (another reaper took it). */
static void mark_exited(proc_engine *e, proc *p, int exit_code, int term_signal, const struct rusage *ru)
{
    /* exec records the old memory's peak as the new program's: a child that never
     * went above hplua's own peak at its spawn has an unknown peak of its own (0) */
    p->max_rss_kb = ru && ru->ru_maxrss > p->inherited_kb ? ru->ru_maxrss : 0;
    p->end_mono = clock_mono();
    p->end_wall = clock_wall();
    p->state = PROC_EXITED;
    p->exit_code = term_signal ? -1 : exit_code;
    p->term_signal = term_signal;
    /* Everything the child wrote is in the pipes now; a grandchild that holds
     * them open must not keep us waiting, so take what is there and close. A
     * stream's reader reads on to EOF, as from a pipe of popen. */
    if (!(p->flags & PROC_STREAM_STDOUT)) {
        read_pipe(e, p, PIPE_OUT);
        unwatch_close(e, &p->fd_out);
    }
    read_pipe(e, p, PIPE_ERR);
    unwatch_close(e, &p->fd_err);
    unwatch_close(e, &p->fd_in);
    if (p->fd_pid < 0)
        e->without_pidfd--;
    unwatch_close(e, &p->fd_pid);
    p->kill_at = 0;
    if (p->piped) {
        p->piped = false;
        e->piped--;
    }
    live_remove(e, p);
    timed_remove(e, p);
    pid_remove(e, p);
    if (e->ended_last)
        e->ended_last->ended_next = p;
    else
        e->ended_first = p;
    e->ended_last = p;
}

proc *proc_take_ended(proc_engine *e)
{
    proc *p = e->ended_first;
    if (p) {
        e->ended_first = p->ended_next;
        if (!e->ended_first)
            e->ended_last = NULL;
        p->ended_next = NULL;
    }
    return p;
}

/* The child whose pidfd became readable: the kernel looks at that one child. */
static void reap_pidfd(proc_engine *e, proc *p)
{
    siginfo_t si;
    struct rusage ru;
    memset(&si, 0, sizeof si);
    if (syscall(SYS_waitid, P_PIDFD, p->fd_pid, &si, WEXITED | WNOHANG | __WALL, &ru) == 0) {
        if (si.si_pid == 0)
            return; /* not ended after all */
        bool exited = si.si_code == CLD_EXITED;
        mark_exited(e, p, exited ? si.si_status : -1, exited ? 0 : si.si_status, &ru);
    } else if (errno == ECHILD && p->state == PROC_RUNNING) {
        mark_exited(e, p, -1, 0, NULL); /* reaped by someone else: it ended, the status is lost */
    }
}

/* Is a wait4(-1) walk pending: after a SIGCHLD, or (SIGCHLD not caught) while a
 * child without a pidfd runs or REAP_INTERVAL after the last walk? */
static bool reap_pending(proc_engine *e)
{
    if (evloop_fd() < 0)
        return true;
    if (!pidfds())
        return evloop_sigchld() != e->sigchld_seen;
    return e->without_pidfd || clock_mono() >= e->reap_after;
}

/* After a SIGCHLD: every child of ours that ended and was not reaped through its
 * pidfd: the descendants we adopted as their subreaper (no zombie is left for
 * them), and children without a pidfd. Without SIGCHLD's handler, on every turn.
 * idle: the loop is about to sleep. Returns how many of the engine's it found. */
static int reap(proc_engine *e, bool idle)
{
    if (!reap_pending(e))
        return 0;
    double now = clock_mono();
    if (e->running >= REAP_EAGER && !e->without_pidfd && now < e->reap_after + (idle ? 0 : REAP_INTERVAL))
        return 0; /* proc_poll wakes up for it */
    unsigned seen = evloop_sigchld();
    int found = 0;
    e->reap_after = now + REAP_INTERVAL;
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0)
            break;
        proc *p = find_pid(e, pid);
        if (p && p->state == PROC_RUNNING) {
            mark_exited(e, p, WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                        &ru);
            found++;
        }
    }
    e->sigchld_seen = seen;
    return found;
}

void proc_terminate(proc_engine *e, proc *p, double grace)
{
    if (p->state != PROC_RUNNING)
        return;
    p->terminated = true;
    kill(-p->pid, SIGTERM);
    kill(p->pid, SIGTERM);
    double at = clock_mono() + (grace > 0 ? grace : 0);
    if (!p->kill_at || at < p->kill_at)
        p->kill_at = at;
    timed_add(e, p);
    if (grace <= 0) {
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
    }
}

/* Timeouts and SIGKILL escalation; returns the nearest pending deadline (0: none). */
static double check_deadlines(proc_engine *e, double now)
{
    double next = 0;
    for (size_t i = 0; i < e->ntimed; i++) {
        proc *p = e->timed[i];
        if (p->timeout > 0 && !p->timed_out) {
            double due = p->start_mono + p->timeout;
            if (now >= due) {
                p->timed_out = true;
                proc_terminate(e, p, 3.0);
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

bool proc_poll(proc_engine *e, double timeout, int extra_fd, short extra_events, short *extra_revents)
{
    struct epoll_event evs[MAX_EVENTS];
    bool extra = false;
    if (extra_revents)
        *extra_revents = 0;
    /* a walk for orphans before sleeping, not while children's ends are being reported */
    if (timeout != 0 && reap(e, true))
        timeout = 0;
    double now = clock_mono(), next = check_deadlines(e, now);
    if (reap_pending(e) && e->reap_after > now && (!next || e->reap_after < next))
        next = e->reap_after;
    /* with pidfds (SIGCHLD not caught), nothing tells of an adopted orphan's end:
     * while children run, a wait wakes for the walk at least every ORPHAN_WALK */
    if (pidfds() && e->running && (!next || next > now + ORPHAN_WALK))
        next = now + ORPHAN_WALK;
    if (next && (timeout < 0 || next - now < timeout))
        timeout = next - now;
    int ms = timeout < 0 ? -1 : (int)(timeout * 1000.0 + 0.999);
    int n = 0;
    if (extra_fd >= 0 || e->epfd < 0) {
        /* the extra fd (and, before the first child, the self-pipe) beside the epoll set */
        struct pollfd fds[2];
        nfds_t k = 0;
        int self = e->epfd >= 0 ? e->epfd : evloop_fd();
        if (self >= 0)
            fds[k++] = (struct pollfd){self, POLLIN, 0};
        if (extra_fd >= 0)
            fds[k++] = (struct pollfd){extra_fd, extra_events, 0};
        if (k && poll(fds, k, ms) > 0) {
            if (extra_fd >= 0 && fds[k - 1].revents) {
                extra = true;
                if (extra_revents)
                    *extra_revents = fds[k - 1].revents;
            }
            if (self >= 0 && fds[0].revents) {
                if (e->epfd >= 0)
                    n = epoll_wait(e->epfd, evs, MAX_EVENTS, 0);
                else
                    evloop_drain();
            }
        } else if (!k && ms > 0) {
            poll(NULL, 0, ms);
        }
    } else {
        n = epoll_wait(e->epfd, evs, MAX_EVENTS, ms);
    }
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (d == SELF_PIPE) {
            evloop_drain();
            continue;
        }
        proc *p = (proc *)(uintptr_t)(d & ~KIND_MASK);
        int which = (int)(d & KIND_MASK);
        if (which == PIDFD)
            reap_pidfd(e, p);
        else if (which == PIPE_IN)
            write_stdin(e, p);
        else
            read_pipe(e, p, which);
    }
    reap(e, false);
    if (e->ntimed)
        check_deadlines(e, clock_mono());
    return extra;
}

/* ---- streams (popen) ---- */

int proc_stdin_write(proc_engine *e, proc *p, const char *data, size_t len)
{
    if (p->fd_in < 0 || p->in_closing)
        return EPIPE;
    if (p->in.len + len > p->in.cap) {
        size_t cap = p->in.cap ? p->in.cap : READ_MIN;
        while (cap < p->in.len + len)
            cap *= 2;
        if (resize_buf(e, &p->in, cap))
            return ENOMEM;
    }
    memcpy(p->in.data + p->in.len, data, len);
    p->in.len += len;
    p->in.total += len;
    write_stdin(e, p);
    if (p->fd_in >= 0 && p->in_off < p->in.len)
        watch(e, p, PIPE_IN, p->fd_in, EPOLLOUT, EPOLL_CTL_MOD);
    return 0;
}

size_t proc_stdin_pending(const proc *p) { return p->fd_in >= 0 ? p->in.len - p->in_off : 0; }

void proc_stdin_close(proc_engine *e, proc *p)
{
    p->in_closing = true;
    if (p->fd_in >= 0 && p->in_off >= p->in.len)
        unwatch_close(e, &p->fd_in);
}

void proc_stdout_take(proc_engine *e, proc *p, size_t n)
{
    proc_buf *b = &p->out;
    b->off += n < b->len - b->off ? n : b->len - b->off;
    if (b->off == b->len) {
        b->off = b->len = 0;
    } else if (b->off >= STREAM_LIMIT) { /* now and then, not on every take */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (p->out_paused && b->len - b->off < STREAM_LIMIT && p->fd_out >= 0) {
        p->out_paused = false;
        watch(e, p, PIPE_OUT, p->fd_out, EPOLLIN, EPOLL_CTL_MOD);
    }
}

void proc_stdout_close(proc_engine *e, proc *p)
{
    unwatch_close(e, &p->fd_out);
    p->out.len = p->out.off = 0;
}

/* ---- the end ---- */

static bool engine_owns(pid_t pid, void *ud) { return find_pid(ud, pid) != NULL; }

void proc_terminate_everything(proc_engine *e, double grace)
{
    if (!e->running && !orphans_spawned())
        return; /* no child was ever started here: no descendant to look for */
    for (size_t i = 0; i < e->running; i++)
        proc_terminate(e, e->live[i], grace);
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
        proc_free(e, e->procs[i]);
    free(e->procs);
    free(e->live);
    free(e->timed);
    free(e->by_pid);
    free(e->by_name);
    if (e->epfd >= 0)
        close(e->epfd);
    orphans_clean_exit();
    size_t hr = e->buf_headroom;
    proc_engine_init(e);
    e->buf_headroom = hr;
}
