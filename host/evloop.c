#include "evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int pipe_fds[2] = {-1, -1};
static volatile sig_atomic_t interrupts;
static volatile sig_atomic_t sigchlds;
static volatile sig_atomic_t last_signal;
static void (*interrupt_cb)(int);
static void (*xfsz_given)(int) = SIG_DFL; /* SIGXFSZ as hplua was started with */

static void on_signal(int sig)
{
    int saved = errno;
    char c = 0;
    if (sig == SIGCHLD) {
        sigchlds++;
    } else {
        interrupts++;
        last_signal = sig;
        if (interrupt_cb)
            interrupt_cb(sig);
    }
    if (pipe_fds[1] >= 0 && write(pipe_fds[1], &c, 1) < 0) {
        /* pipe full: a wake-up is already pending */
    }
    errno = saved;
}

/* Sends sig to on_signal (restarting what the kernel restarts); 0 or an errno value. */
static int catch_signal(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    return sigaction(sig, &sa, NULL) ? errno : 0;
}

int evloop_init(void)
{
    if (pipe_fds[0] >= 0)
        return 0;
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return errno;
    /* SIGHUP (the terminal went away) ends a run like SIGTERM does. */
    int err = catch_signal(SIGINT);
    if (!err)
        err = catch_signal(SIGTERM);
    if (!err)
        err = catch_signal(SIGHUP);
    if (err)
        return err;
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit (ulimit -f) fails a write with EFBIG, which the spools and
     * reports handle, rather than ending the process with no report. The children get
     * the disposition hplua was given. */
    xfsz_given = signal(SIGXFSZ, SIG_IGN);
    if (xfsz_given == SIG_ERR)
        xfsz_given = SIG_DFL;
    return 0;
}

int evloop_catch_sigchld(void) { return catch_signal(SIGCHLD); }

int evloop_fd(void) { return pipe_fds[0]; }

void evloop_drain(void)
{
    char buf[64];
    while (read(pipe_fds[0], buf, sizeof buf) > 0) {
    }
}

unsigned evloop_interrupts(void) { return (unsigned)interrupts; }
unsigned evloop_sigchld(void) { return (unsigned)sigchlds; }
int evloop_last_signal(void) { return (int)last_signal; }
void evloop_on_interrupt(void (*fn)(int sig)) { interrupt_cb = fn; }

void evloop_reset_child_signals(void)
{
    signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, xfsz_given);
}

const char *evloop_signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGINT"; }
