/* The public C API of hplua.h, for instrument modules. */
#include "host.h"
#include "hplua.h"

#include <math.h>
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
    host_message(L, key, buf);
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
    push_loaded(L, "hplua", "measure");
    if (!lua_isfunction(L, -1))
        luaL_error(L, "hplua_measure: the hplua module is not loaded");
    lua_createtable(L, 0, 5);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, value);
    lua_setfield(L, -2, "value");
    if (unit) {
        lua_pushstring(L, unit);
        lua_setfield(L, -2, "unit");
    }
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

int hplua_wait_fd(lua_State *L, int fd, int events, double timeout)
{
    return host_wait(L, fd, (short)events, timeout) ? HPLUA_READY : HPLUA_TIMEOUT;
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
