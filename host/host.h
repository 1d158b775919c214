/* Internal interface between the files that speak the Lua C API. */
#ifndef HPLUA_HOST_H
#define HPLUA_HOST_H

#include <lua.h>

/* lguard.c: deadlines, interrupts and the message handler for test code. */
void guard_install(lua_State *L);
/* Raises the timeout or interrupt error when a guarded call is due. */
void guard_check(lua_State *L);
/* Monotonic deadline of the running guarded call, 0 when none. */
double guard_deadline(void);
/* Adds run_guarded, watch_exit, atomic, interrupted, caller and set_rescue to the table on top of the stack. */
void guard_register(lua_State *L);

/* Is a guarded call (test code) running, with the heap cap in force? */
int guard_armed(void);
/* Is a run on (exit() then comes from test code's native calls)? */
int guard_exit_watched(void);
/* The run's exit status once its verdict is out (sys.watch_exit(status)), else -1. */
int guard_exit_verdict(void);

int luaopen_hplua_sys(lua_State *L);
int luaopen_hplua_process(lua_State *L);
int luaopen_hplua_process_internal(lua_State *L);
int luaopen_hplua_json(lua_State *L);
int luaopen_hplua_fs(lua_State *L);
int luaopen_hplua_sqlite(lua_State *L);
int luaopen_hplua_stream(lua_State *L); /* lstream.c: hp.serial, hp.tcp */
/* lsandbox.c: text chunks only in test code (install()). */
int luaopen_hplua_sandbox(lua_State *L);

/* modules.c: the embedded Lua files as package.preload entries. */
void modules_install(lua_State *L);

#endif
