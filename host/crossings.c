#include "crossings.h"

#include "bigmem.h"
#include "clock.h"
#include "heap.h"

#include <lauxlib.h>
#include <math.h>

#define HANDLERS_KEY "hplua.crossings" /* registry: { event = fn, message = fn, lines = { [proc] = fn } } */

/* Pushes the handlers table (created on first use), or its field when field is set. */
static void push_handlers(lua_State *L, const char *field)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 3);
        lua_newtable(L);
        lua_setfield(L, -2, "lines");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
    }
    if (field) {
        lua_getfield(L, -1, field);
        lua_remove(L, -2);
    }
}

static void set_handler(lua_State *L, const char *field, int idx)
{
    idx = lua_absindex(L, idx);
    if (!lua_isnoneornil(L, idx))
        luaL_checktype(L, idx, LUA_TFUNCTION);
    push_handlers(L, NULL);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, field);
    lua_pop(L, 1);
}

void crossing_set_event_handler(lua_State *L, int idx) { set_handler(L, "event", idx); }
void crossing_set_message_handler(lua_State *L, int idx) { set_handler(L, "message", idx); }

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_time(lua_State *L, const char *k, double wall)
{
    char when[48];
    clock_iso8601(wall, when, sizeof when);
    set_str(L, k, when);
}

#if defined(__SANITIZE_ADDRESS__)
#define CAN_HAND_OVER 0 /* the hand-over is a copy onto itself, which ASan reports */
#elif __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CAN_HAND_OVER (!RUNNING_ON_VALGRIND) /* and so does valgrind */
#else
#define CAN_HAND_OVER 1
#endif

/* A finished child's output becomes a Lua string once, without a copy: its
 * buffer was allocated with room for the string header before the data (the
 * engine's buf_headroom, probed at load), and the allocator hands exactly that
 * block to lua_pushlstring, whose copy is then onto itself. The string is kept,
 * so later results push the same one. Below BIGMEM_THRESHOLD a copy is cheap. */
void crossing_push_output(lua_State *L, proc *p, proc_buf *b, bool open, size_t headroom)
{
    if (b->given) {
        lua_getfield(L, LUA_REGISTRYINDEX, PROCESS_OUTPUTS_KEY);
        lua_rawgetp(L, -1, b);
        lua_remove(L, -2);
        return;
    }
    size_t hr = headroom;
    bool whole = p->state == PROC_EXITED && !open && !(p->flags & PROC_STREAM_STDOUT) &&
                 (!p->line_reader || b != &p->out || p->lines_seen == b->len);
    if (!hr || !whole || b->len < BIGMEM_THRESHOLD || !CAN_HAND_OVER) {
        lua_pushlstring(L, b->data ? b->data : "", b->len);
        return;
    }
    heap_donate(b->data - hr, b->cap + hr, hr + b->len + 1, LUA_TSTRING);
    lua_pushlstring(L, b->data, b->len);
    if (heap_donate_end()) {
        proc_buf_given(b); /* Lua owns the block now */
        if (lua_getfield(L, LUA_REGISTRYINDEX, PROCESS_OUTPUTS_KEY) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, LUA_REGISTRYINDEX, PROCESS_OUTPUTS_KEY);
        }
        lua_pushvalue(L, -2);
        lua_rawsetp(L, -2, b);
        lua_pop(L, 1);
    }
}

void crossing_process_event(lua_State *L, const char *kind, const proc *p, size_t headroom)
{
    push_handlers(L, "event");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pushstring(L, kind);
    lua_createtable(L, 0, 16);
    set_str(L, "name", p->name);
    set_int(L, "pid", p->pid);
    set_str(L, "command", p->command);
    set_time(L, "started_at", p->start_wall);
    if (p->state == PROC_EXITED) {
        if (p->term_signal)
            set_int(L, "signal", p->term_signal);
        else
            set_int(L, "exit_code", p->exit_code);
        set_time(L, "ended_at", p->end_wall);
        lua_pushnumber(L, p->end_mono - p->start_mono);
        lua_setfield(L, -2, "duration");
        lua_pushboolean(L, p->timed_out);
        lua_setfield(L, -2, "timed_out");
        lua_pushboolean(L, p->terminated);
        lua_setfield(L, -2, "terminated");
        set_int(L, "stdout_bytes", (lua_Integer)p->out.total);
        set_int(L, "stderr_bytes", (lua_Integer)p->err.total);
        /* a last line without a newline counts as a line */
        set_int(L, "stdout_lines", (lua_Integer)(p->out.lines + (p->out.total && p->out.last != '\n')));
        set_int(L, "stderr_lines", (lua_Integer)(p->err.lines + (p->err.total && p->err.last != '\n')));
        if (p->max_rss_kb > 0)
            set_int(L, "max_rss_kb", p->max_rss_kb);
        /* the whole output: the JSON report's processes are built from these events */
        crossing_push_output(L, (proc *)p, (proc_buf *)&p->out, false, headroom);
        lua_setfield(L, -2, "stdout");
        crossing_push_output(L, (proc *)p, (proc_buf *)&p->err, false, headroom);
        lua_setfield(L, -2, "stderr");
    }
    lua_call(L, 2, 0);
}

void crossing_set_line_callback(lua_State *L, const proc *p, int idx)
{
    idx = lua_absindex(L, idx);
    push_handlers(L, "lines");
    lua_pushlightuserdata(L, (void *)p);
    lua_pushvalue(L, idx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

void crossing_forget_line_callback(lua_State *L, const proc *p)
{
    push_handlers(L, "lines");
    lua_pushlightuserdata(L, (void *)p);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

bool crossing_push_line_callback(lua_State *L, const proc *p)
{
    push_handlers(L, "lines");
    lua_pushlightuserdata(L, (void *)p);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1))
        return true;
    lua_pop(L, 1);
    return false;
}

void crossing_message(lua_State *L, const char *key, const char *text)
{
    push_handlers(L, "message");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pushstring(L, text);
    if (key)
        lua_pushstring(L, key);
    else
        lua_pushnil(L);
    lua_call(L, 2, 0);
}

int crossing_measure(lua_State *L, const char *name, double value, const char *unit, double min, double max)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "hplua");
    lua_remove(L, -2);
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "measure");
    else
        lua_pushnil(L);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1))
        luaL_error(L, "hplua_measure: the hplua module is not loaded");
    lua_createtable(L, 0, 5);
    set_str(L, "name", name);
    lua_pushnumber(L, value);
    lua_setfield(L, -2, "value");
    if (unit)
        set_str(L, "unit", unit);
    if (!isnan(min)) {
        lua_pushnumber(L, min);
        lua_setfield(L, -2, "min");
    }
    if (!isnan(max)) {
        lua_pushnumber(L, max);
        lua_setfield(L, -2, "max");
    }
    lua_call(L, 1, 1);
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return ok;
}
