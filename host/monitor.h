/* The monitor: watches the guard from outside the Lua code, on a POSIX timer whose
 * signal handler runs a short step on the (only) thread. Plain C. No thread: a
 * second thread would make every malloc of the Lua heap take a lock (glibc).
 *
 * - Once a guarded call's deadline has passed or an interrupt is pending, the step
 *   calls the tick callback every few ms (the guard then arms its Lua hook);
 *   otherwise the timer is idle: no signal reaches test code before its deadline
 *   (a driver's usleep or poll in C is not cut short; the children's pipes are
 *   drained by a sparse count hook of the guard's, lguard.c).
 * - The last resort: when a deadline or an interrupt stays unanswered for
 *   MONITOR_GRACE seconds (test code stuck in a C call or a finalizer, where no hook
 *   reaches), or the run is still alive MONITOR_HARD_CAP seconds after the first
 *   SIGINT/SIGTERM, the handler forks; the child (a copy of the state as it was)
 *   runs the rescue callback, which writes the reports; the parent waits for it
 *   (bounded), ends every descendant and exits with status 2. */
#ifndef HPLUA_MONITOR_H
#define HPLUA_MONITOR_H

#include <stddef.h>

#define MONITOR_GRACE 2.0
#define MONITOR_HARD_CAP 4.0

enum { MONITOR_TIMEOUT = 1, MONITOR_INTERRUPT = 2 };

typedef struct monitor_config {
    int signal;                 /* the timer's signal (its handler belongs to the monitor) */
    void (*tick)(void);         /* in the signal handler: stop at the next instruction */
    void (*rescue)(int reason); /* in the forked child of the last resort */
} monitor_config;

/* Creates the timer and installs the handler; returns 0 or an errno value. */
int monitor_init(const monitor_config *c);
/* Deletes the timer (at the end of main: no tick, no last resort from then on). */
void monitor_stop(void);
/* A guarded call begins (deadline: monotonic seconds, 0 none) / ends. */
void monitor_arm(double deadline, unsigned interrupts_at_arm);
void monitor_disarm(void);
/* Runs a step now (an interrupt arrived); async-signal-safe. */
void monitor_kick(void);

#endif
