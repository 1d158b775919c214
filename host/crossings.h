/* Every crossing from C into Lua, in one place (as wrk's script.h lists its
 * calls into Lua scripts). Each calls a Lua function the Lua side registered:
 *
 *   process events  the runner's handler, fn(kind, fields), kind "process_started"
 *                   or "process_ended" (loop.c, lproc.c)
 *   lines           a test's on_line callback, fn(line), for each stdout line
 *                   of its child (loop.c)
 *   messages        the runner's handler, fn(text, key): hplua_set_message (lapi.c)
 *   measurements    hplua.measure(t): hplua_measure (lapi.c)
 *
 * Lua code runs only inside waits (loop_turn) or the call that asked for it
 * (start, hplua_set_message, hplua_measure); what the Lua side raises passes
 * through. Handlers live in the registry, never in file statics. */
#ifndef HPLUA_CROSSINGS_H
#define HPLUA_CROSSINGS_H

#include "proc.h"

#include <lua.h>

/* Registers the function at idx (nil: none) as the process-event handler or the
 * message handler. */
void crossing_set_event_handler(lua_State *L, int idx);
void crossing_set_message_handler(lua_State *L, int idx);

/* kind: "process_started" or "process_ended"; fields from p. */
void crossing_process_event(lua_State *L, const char *kind, const proc *p);

/* p's on_line callback: set (function at idx), forget, call with one line. */
void crossing_set_line_callback(lua_State *L, const proc *p, int idx);
void crossing_forget_line_callback(lua_State *L, const proc *p);
/* Pushes p's callback; returns false (pushing nothing) when it has none. */
bool crossing_push_line_callback(lua_State *L, const proc *p);

void crossing_message(lua_State *L, const char *key, const char *text);
/* hplua.measure{name, value, unit, min, max} (NaN: no limit); returns its verdict. */
int crossing_measure(lua_State *L, const char *name, double value, const char *unit, double min, double max);

#endif
