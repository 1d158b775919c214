/* The process engine: children in their own process group with pipes on
 * stdin/stdout/stderr, every pipe read continuously by one epoll loop. Each child
 * has a pidfd in that loop and is reaped through it (waitid P_PIDFD: the kernel
 * looks at that child only). Orphans we adopted are reaped with wait4(-1) after a
 * SIGCHLD, which walks every child we have: with many children, at most every
 * REAP_INTERVAL. Where pidfds are missing, children are reaped that way too.
 * Children are indexed by pid and by name; the loop's work per turn follows what
 * happened, not how many children live. Plain C, no Lua: unit-tested alone (tests/c/test_proc.c). The
 * engine owns every proc, fd and buffer it creates. */
#ifndef HPLUA_PROC_H
#define HPLUA_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct proc_buf {
    char *data;
    size_t len, cap;
    size_t off;    /* a stream's reader has taken data[0..off) */
    size_t total;  /* bytes ever read (a stream drops what its reader took) */
    size_t lines;  /* newlines among them */
    char last;     /* the last byte read */
    bool big_pipe; /* the pipe was enlarged after it was found full */
    bool given;    /* the data was handed over whole (proc_buf_given): data is NULL, len stays */
} proc_buf;

typedef enum { PROC_RUNNING, PROC_EXITED } proc_state;

/* proc_spec.flags */
enum {
    PROC_INHERIT_STDIN = 1,  /* the child reads hplua's stdin (os.execute, io.popen "r") */
    PROC_INHERIT_STDOUT = 2, /* the child writes to hplua's stdout (os.execute, io.popen "w") */
    PROC_INHERIT_STDERR = 4,
    PROC_STREAM_STDIN = 8,   /* stdin stays open for proc_stdin_write until proc_stdin_close */
    PROC_STREAM_STDOUT = 16, /* a reader takes stdout (proc_stdout_take); reading pauses while it lags */
    PROC_KEEP_GROUP = 32,    /* stays in hplua's process group (a child that reads the terminal) */
};

typedef struct proc {
    char *name;
    char *command; /* display form of the command line */
    pid_t pid;
    proc_state state;
    unsigned flags;
    int fd_in, fd_out, fd_err; /* -1 once closed */
    int fd_pid;                /* its pidfd (-1: none, or reaped) */
    proc_buf in;               /* what is still to be written to stdin */
    size_t in_off;
    bool in_closing; /* a stream's stdin closes once written */
    bool out_paused; /* a stream's reader lags: stdout is not read for now */
    proc_buf out, err;
    double start_mono, end_mono, start_wall, end_wall;
    double timeout;  /* seconds, 0 = none */
    double kill_at;  /* monotonic time of the SIGKILL escalation, 0 = none */
    int exit_code;   /* -1 when killed by a signal */
    int term_signal; /* 0 when it exited */
    long max_rss_kb; /* the child's own peak resident set size, 0 until it ends or when unknown */
    long inherited_kb; /* hplua's peak at the spawn: Linux charges it to the child too */
    bool timed_out, terminated;
    /* the binding's */
    bool reported;          /* its end was announced */
    bool scope_test;        /* ends with the attempt that started it */
    unsigned long attempt;  /* the attempt that started it */
    size_t lines_seen;      /* on_line cursor into out */
    bool line_reader;       /* has an on_line callback */
    struct proc *line_next; /* list of children with an on_line callback */
    /* the engine's */
    size_t live_idx, timed_idx; /* positions in live[] and timed[] (SIZE_MAX: not there) */
    bool piped;                 /* counted in the engine's piped */
    struct proc *pid_next, *name_next;
    struct proc *ended_next; /* queue of ended children the binding has not taken yet */
} proc;

typedef struct proc_engine {
    proc **procs; /* every child started, in start order */
    size_t n, cap;
    proc **live; /* the running ones, any order */
    size_t running, live_cap;
    proc **timed; /* running ones with a timeout or a SIGKILL due */
    size_t ntimed, timed_cap;
    proc **by_pid, **by_name; /* hash chains: live children by pid; every child by name, newest first */
    size_t pid_buckets, name_buckets;
    proc *ended_first, *ended_last; /* ended since the binding last took them (proc_take_ended) */
    int epfd;                       /* -1 until the first start */
    unsigned sigchld_seen;          /* evloop_sigchld() when wait4(-1) last found nothing more */
    double reap_after;              /* the next wait4(-1) walk is not due before (monotonic) */
    size_t without_pidfd;           /* running children that only wait4(-1) reaps */
    size_t piped;                   /* running children whose stdout or stderr the engine reads */
    /* Bytes kept free before every buffer's data: room for the header of the
     * object the binding turns a finished output into without copying it. Set
     * before the first start (0 after proc_engine_init). */
    size_t buf_headroom;
} proc_engine;

typedef struct proc_spec {
    const char *name;
    const char *path; /* executable to exec (already resolved) */
    char *const *argv;
    char *const *envp;      /* NULL: inherit */
    const char *cwd;        /* NULL: inherit */
    const char *stdin_data; /* NULL: empty stdin */
    size_t stdin_len;
    bool merge_stderr;   /* stderr goes into the stdout pipe */
    unsigned flags;      /* PROC_INHERIT_*, PROC_STREAM_* */
    double timeout;      /* seconds, 0 = none */
    const char *command; /* display form; NULL: argv quoted (proc_quote_argv) */
    const char *output;  /* stdout and stderr to this file (created or emptied), not to pipes */
} proc_spec;

void proc_engine_init(proc_engine *e);
/* argv as a POSIX shell would need it typed (malloc'ed; NULL when out of memory). */
char *proc_quote_argv(char *const *argv);
/* Terminates and reaps whatever still runs, then frees everything. */
void proc_engine_free(proc_engine *e);

/* Finds an executable like execvp would; returns 0 and the path in buf, or an errno. */
int proc_resolve(const char *file, const char *path_env, char *buf, size_t len);
/* Starts a child. Returns 0, or an errno value with a reason in err. */
int proc_start(proc_engine *e, const proc_spec *s, proc **out, char *err, size_t errlen);
/* The newest child of that name, or NULL. */
proc *proc_find(proc_engine *e, const char *name);

/* One turn of the loop: waits up to timeout seconds (<0: forever) for pipe data,
 * an exit, a signal or the extra fd (-1: none), and handles what came. Returns
 * true when the extra fd is ready (its revents in *extra_revents). */
bool proc_poll(proc_engine *e, double timeout, int extra_fd, short extra_events, short *extra_revents);

/* The oldest child that ended and was not taken yet, or NULL. */
proc *proc_take_ended(proc_engine *e);

/* SIGTERM to the child's group now, SIGKILL after grace seconds (enforced by proc_poll). */
void proc_terminate(proc_engine *e, proc *p, double grace);
/* Terminates every live child and every other descendant of this process
 * (TERM, grace, KILL, until /proc shows none) and reaps them. */
void proc_terminate_everything(proc_engine *e, double grace);
/* Makes this process the reaper of orphaned descendants, sets the run token and
 * the signal handlers. */
int proc_global_init(void);

/* The binding took over b's memory (data - buf_headroom, cap + buf_headroom). */
void proc_buf_given(proc_buf *b);

/* Streams (PROC_STREAM_*). Queues bytes for stdin; returns 0 or EPIPE when the
 * child's stdin is gone. proc_stdin_pending says how much is still queued. */
int proc_stdin_write(proc_engine *e, proc *p, const char *data, size_t len);
size_t proc_stdin_pending(const proc *p);
/* No more input: stdin closes once the queue is written. */
void proc_stdin_close(proc_engine *e, proc *p);
/* The reader took n bytes of out (from out.off on); reading resumes. */
void proc_stdout_take(proc_engine *e, proc *p, size_t n);
/* Stops reading stdout for good (the reader closed it). */
void proc_stdout_close(proc_engine *e, proc *p);

#endif
