/* No orphans: the run token every descendant inherits, the watchdog that kills
 * its holders if hplua dies by SIGKILL, and the end-of-run sweep of every
 * descendant found in /proc. Plain C, no Lua. */
#ifndef HPLUA_ORPHANS_H
#define HPLUA_ORPHANS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Puts this run's token into HPLUA_RUNS. Call before any environment is built
 * or any child is started; later calls do nothing. Returns 0 or an errno. */
int orphans_init(void);
/* Starts the watchdog (once). It lives in its own session, so a SIGKILL of
 * hplua's process group does not reach it; it ends when hplua ends. */
void orphans_watchdog_start(void);
pid_t orphans_watchdog_pid(void);
/* on: the sweeps below leave pid alone (a helper of hplua's own, such as the
 * history recorder, which ends by itself); off: no longer. At most 8 at once. */
void orphans_spare(pid_t pid, bool on);
/* Is pid spared (the watchdog, or a helper above)? Async-signal-safe. */
bool orphans_is_spared(pid_t pid);
/* A child was started (or native code that may start one was loaded): from now on
 * the end-of-run sweep scans /proc. Before, no descendant but the watchdog and the
 * spared helpers can exist, and the sweep has nothing to look for. */
void orphans_note_spawn(void);
bool orphans_spawned(void);
/* Tells the watchdog that hplua has ended every descendant itself. */
void orphans_clean_exit(void);

/* The token of this run ("hplua-PID-MICROSECONDS"). */
const char *orphans_token(void);
/* Does /proc/PID/environ (all of it) hold token? */
bool orphans_environ_has(pid_t pid, const char *token);

/* Sends sig to every live descendant but the watchdog, once. Returns how many. */
size_t orphans_signal(int sig);
/* SIGKILLs every descendant (and the process groups they lead) until a scan of
 * /proc finds none, or limit seconds pass; reaps the zombies that are our own
 * children unless owned(pid) says another part (the engine) reaps them.
 * Returns the number of live descendants left (0 is the goal). */
size_t orphans_kill_all(double limit, bool (*owned)(pid_t pid, void *ud), void *ud);
/* Kills every process (but this one) whose environment holds token, until a scan
 * finds none or limit seconds pass. Used by the watchdog; exposed for tests. */
size_t orphans_kill_token_holders(const char *token, double limit);

#endif
