/* Internal interface between the files that speak the Lua C API. */
#ifndef HPLUA_HOST_H
#define HPLUA_HOST_H

#include "proc.h"

#include <lua.h>

/* lguard.c: deadlines, interrupts and the message handler for test code. */
void guard_install(lua_State *L);
/* Raises the timeout or interrupt error when a guarded call is due. */
void guard_check(lua_State *L);
/* Monotonic deadline of the running guarded call, 0 when none. */
double guard_deadline(void);
/* Pushes the error-information table for the error object at idx (no Lua error escapes). */
int guard_msgh(lua_State *L);
/* Adds run_guarded, interrupted and caller to the table on top of the stack. */
void guard_register(lua_State *L);

/* Is a guarded call (test code) running? */
int guard_armed(void);

/* main.c: the Lua heap limit of --max-memory (0: none), enforced in test code. */
void host_set_memory_limit(size_t bytes);
size_t host_memory_limit(void);

/* lproc.c: the one process engine and the turn of the event loop every wait uses. */
proc_engine *host_engine(void);
/* Waits up to timeout seconds (<0: no limit but the guard's) for anything; honours
 * the test's deadline and Ctrl-C (raising), runs on_line callbacks and records
 * process ends. Returns PROC_EV_* bits. */
int host_turn(lua_State *L, double timeout, int fd, short events, short *revents);
/* Turns of the loop until fd is ready for events (returns 1) or timeout seconds
 * pass (returns 0; timeout < 0: no limit but the guard's). fd -1: just wait. */
int host_wait(lua_State *L, int fd, short events, double timeout);
/* Records a message on the current test through the runner's handler. */
void host_message(lua_State *L, const char *key, const char *text);

int luaopen_hplua_sys(lua_State *L);
int luaopen_hplua_process(lua_State *L);
int luaopen_hplua_json(lua_State *L);
int luaopen_hplua_fs(lua_State *L);

/* modules.c: the embedded Lua files as package.preload entries. */
void modules_install(lua_State *L);

#endif
