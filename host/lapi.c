/* The public C API of hplua.h, for instrument modules. */
#include "crossings.h"
#include "host.h"
#include "loop.h"
#include "hplua.h"

#include <stdarg.h>
#include <stdio.h>

void hplua_check_abi(lua_State *L, int module_abi)
{
    if (module_abi != HPLUA_ABI_VERSION)
        luaL_error(L, "this module was built for hplua ABI %d, but this hplua (%s) has ABI %d: rebuild it against this hplua's hplua.h",
                   module_abi, HPLUA_VERSION, HPLUA_ABI_VERSION);
}

int hplua_abi_version(void) { return HPLUA_ABI_VERSION; }

void hplua_set_message(lua_State *L, const char *key, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    crossing_message(L, key, buf);
}

/* Pushes package.loaded[name][field]. */
static void push_loaded(lua_State *L, const char *name, const char *field)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (lua_istable(L, -1))
        lua_getfield(L, -1, field);
    else
        lua_pushnil(L);
    lua_remove(L, -2);
}

int hplua_measure(lua_State *L, const char *name, double value, const char *unit, double min, double max)
{
    return crossing_measure(L, name, value, unit, min, max);
}

int hplua_wait_fd(lua_State *L, int fd, int events, double timeout)
{
    return loop_wait(L, fd, (short)events, timeout) ? HPLUA_READY : HPLUA_TIMEOUT;
}

const char *hplua_current_test(lua_State *L)
{
    int top = lua_gettop(L);
    const char *id = NULL;
    push_loaded(L, "hplua.context", "current");
    if (lua_istable(L, -1) && lua_getfield(L, -1, "test") == LUA_TTABLE && lua_getfield(L, -1, "id") == LUA_TSTRING)
        id = lua_tostring(L, -1); /* anchored in the test's table */
    lua_settop(L, top);
    return id;
}
