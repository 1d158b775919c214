/* Process-wide signal plumbing for the event loop: SIGINT, SIGTERM and SIGHUP (and
 * SIGCHLD where children cannot be watched through pidfds) handlers only set
 * counters and write a byte to a self-pipe, which every wait polls. Plain C, no
 * Lua. */
#ifndef HPLUA_EVLOOP_H
#define HPLUA_EVLOOP_H

/* Installs the handlers (not SIGCHLD's) and the self-pipe; returns 0 or an errno value. */
int evloop_init(void);
/* Installs SIGCHLD's handler, for an engine without pidfds: a handled SIGCHLD cuts
 * short whatever sleep or poll the code is in (EINTR), test code's C calls too, so
 * it is caught only where nothing else tells of a child's end. */
int evloop_catch_sigchld(void);
/* Read end of the self-pipe (nonblocking), or -1 before evloop_init. */
int evloop_fd(void);
/* Empties the self-pipe (what came is in the counters). */
void evloop_drain(void);
/* Number of SIGCHLD received so far: a change means a child of ours may wait to be reaped. */
unsigned evloop_sigchld(void);
/* Number of SIGINT/SIGTERM/SIGHUP received so far, and the last one's number. */
unsigned evloop_interrupts(void);
int evloop_last_signal(void);
/* "SIGINT", "SIGTERM" or "SIGHUP". */
const char *evloop_signal_name(int sig);
/* Called from the signal handler after an interrupt: must be async-signal-safe. */
void evloop_on_interrupt(void (*fn)(int sig));
/* Restores default dispositions (used in children before exec). */
void evloop_reset_child_signals(void);

#endif
