/* The process engine: children in their own process group with pipes on
 * stdin/stdout/stderr, all pipes read continuously by one poll loop, exits
 * noticed through SIGCHLD's self-pipe byte. Plain C, no Lua: unit-tested alone
 * (tests/c/test_proc.c). The engine owns every proc, fd and buffer it creates. */
#ifndef HPLUA_PROC_H
#define HPLUA_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct proc_buf {
    char *data;
    size_t len, cap;
    bool big_pipe; /* the pipe was enlarged after it was found full */
} proc_buf;

typedef enum { PROC_RUNNING, PROC_EXITED } proc_state;

typedef struct proc {
    char *name;
    char *command; /* display form of the command line */
    pid_t pid;
    proc_state state;
    int fd_in, fd_out, fd_err; /* -1 once closed */
    char *stdin_data;
    size_t stdin_len, stdin_off;
    proc_buf out, err;
    double start_mono, end_mono, start_wall, end_wall;
    double timeout;  /* seconds, 0 = none */
    double kill_at;  /* monotonic time of the SIGKILL escalation, 0 = none */
    int exit_code;   /* -1 when killed by a signal */
    int term_signal; /* 0 when it exited */
    long max_rss_kb; /* peak resident set size of the child (wait4), 0 until it ends */
    bool timed_out, terminated;
    bool reported;    /* the binding has announced its end */
    size_t lines_seen;       /* the binding's on_line cursor into out */
    struct proc *line_next; /* the binding's list of children with an on_line callback */
} proc;

typedef struct proc_engine {
    proc **procs; /* every child started, in start order */
    size_t n, cap;
    proc **live; /* the running ones (the only ones with open pipes), any order */
    size_t running, live_cap;
    size_t unreported; /* ended since the binding last looked (proc.reported) */
} proc_engine;

typedef struct proc_spec {
    const char *name;
    const char *path;       /* executable to exec (already resolved) */
    char *const *argv;
    char *const *envp;      /* NULL: inherit */
    const char *cwd;        /* NULL: inherit */
    const char *stdin_data; /* NULL: empty stdin */
    size_t stdin_len;
    bool merge_stderr;      /* stderr goes into the stdout pipe */
    double timeout;         /* seconds, 0 = none */
    const char *command;    /* display form; NULL: argv joined */
} proc_spec;

enum { PROC_EV_EXTRA = 1, PROC_EV_INTERRUPT = 2, PROC_EV_EXIT = 4, PROC_EV_DATA = 8 };

void proc_engine_init(proc_engine *e);
/* Terminates and reaps whatever still runs, then frees everything. */
void proc_engine_free(proc_engine *e);

/* Finds an executable like execvp would; returns 0 and the path in buf, or an errno. */
int proc_resolve(const char *file, const char *path_env, char *buf, size_t len);
/* Starts a child. Returns 0, or an errno value with a reason in err. */
int proc_start(proc_engine *e, const proc_spec *s, proc **out, char *err, size_t errlen);
proc *proc_find(proc_engine *e, const char *name);

/* One turn of the loop: waits up to timeout seconds (<0: forever) for pipe data,
 * an exit, an interrupt or the extra fd (-1: none), and handles what came.
 * Returns PROC_EV_* bits; *extra_revents gets the extra fd's revents. */
int proc_poll(proc_engine *e, double timeout, int extra_fd, short extra_events, short *extra_revents);

/* SIGTERM to the child's group now, SIGKILL after grace seconds (enforced by proc_poll). */
void proc_terminate(proc *p, double grace);
/* Terminates every live child and every other descendant of this process
 * (TERM, grace, KILL) and reaps them. Blocks for at most grace + a little. */
void proc_terminate_everything(proc_engine *e, double grace);
/* Makes this process the reaper of orphaned descendants and sets up signals. */
int proc_global_init(void);

#endif
