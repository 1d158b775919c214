/* The event loop of the host: the one process engine, the turn every wait is
 * made of (hp.sleep, process waits, terminate, hplua_wait_fd, dialog input),
 * on_line delivery and process events (through crossings.h). It knows nothing
 * of tests: the guard registers its deadline and its check (loop_set_guard). */
#ifndef HPLUA_LOOP_H
#define HPLUA_LOOP_H

#include "proc.h"

#include <lua.h>

proc_engine *loop_engine(void);

/* The guard's part in every turn: the running test's monotonic deadline (0:
 * none) bounds the wait; check(L) raises the timeout or interrupt error;
 * child_started() after each start. */
typedef struct loop_guard {
    double (*deadline)(void);
    void (*check)(lua_State *L);
    void (*child_started)(void);
} loop_guard;
void loop_set_guard(const loop_guard *g);

/* One turn: waits up to timeout seconds (<0: no limit but the guard's) for
 * anything, then runs on_line callbacks and announces ended processes. Raises
 * the guard's error when the test's deadline passes or the operator interrupts.
 * Returns true when fd (-1: none) is ready for events; *revents gets them. */
bool loop_turn(lua_State *L, double timeout, int fd, short events, short *revents);
/* Turns until fd is ready (returns 1) or timeout seconds pass (returns 0;
 * timeout < 0: no limit but the guard's). fd -1: just wait. */
int loop_wait(lua_State *L, int fd, short events, double timeout);

/* Reads pipes and reaps without waiting and without running any Lua: for
 * queries (results, collect, alive) and the guard's hook. */
void loop_drain(void);
/* Is any child running? */
bool loop_live(void);
/* Is any live child's stdout or stderr read by the engine (its pipes must be drained
 * while test code computes)? */
bool loop_piped(void);

/* Starts a child (proc_start) for the current attempt and announces it
 * (process_started). Returns 0 or an errno with a reason in err. */
int loop_start(lua_State *L, const proc_spec *s, bool scope_test, proc **out, char *err, size_t errlen);
/* Announces every process that ended and was not announced yet (no on_line). */
void loop_announce_ends(lua_State *L);

/* Lets p's on_line callback (registered in crossings) see its lines. */
void loop_add_line_reader(proc *p);

/* Attempts: a child started with scope "test" while an attempt runs ends with
 * it. loop_end_attempt terminates those still running (TERM, grace, KILL),
 * reaps them without running on_line callbacks, and announces every end. */
void loop_begin_attempt(void);
void loop_end_attempt(lua_State *L, double grace);

/* The end of the host: every child and descendant ends and is reaped. */
void loop_shutdown(void);

#endif
