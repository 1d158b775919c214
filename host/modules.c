/* Makes the embedded runner and stdlib (bytecode) require-able. With HPLUA_SRC set to the
 * source tree, the same modules are read from their files instead, so a change
 * to a .lua file needs no rebuild. Chunk names are "@hplua:<path>" either way,
 * which is how tracebacks tell the host's frames from the test author's. */
#include "host.h"
#include "modules.h"
#include "orphans.h"

int luaopen_hplua_http(lua_State *L); /* lhttp.c */
int luaopen_hplua_pq(lua_State *L);   /* lpq.c */

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static int load_embedded(lua_State *L)
{
    const hplua_embedded *m = &hplua_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
    const char *root = getenv("HPLUA_SRC");
    int rc;
    lua_pushfstring(L, "@hplua:%s", m->path);
    const char *chunkname = lua_tostring(L, -1);
    if (root && *root) {
        luaL_Buffer b;
        lua_pushfstring(L, "%s/%s", root, m->path);
        FILE *f = fopen(lua_tostring(L, -1), "rb");
        if (!f)
            return luaL_error(L, "HPLUA_SRC: cannot open %s", lua_tostring(L, -1));
        luaL_buffinit(L, &b);
        size_t n;
        do {
            char *p = luaL_prepbuffer(&b);
            n = fread(p, 1, LUAL_BUFFERSIZE, f);
            luaL_addsize(&b, n);
        } while (n == LUAL_BUFFERSIZE);
        fclose(f);
        luaL_pushresult(&b);
        size_t len;
        const char *src = lua_tolstring(L, -1, &len);
        rc = luaL_loadbufferx(L, src, len, chunkname, "t");
    } else {
        rc = luaL_loadbufferx(L, m->src, m->len, chunkname, "b"); /* built by cmake/embed.c */
    }
    if (rc != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

/* warn() as in the stand-alone lua: off until warn("@on"), off again with
 * warn("@off"); a warning is "Lua warning: " and its pieces on stderr. */
static void warn_on(void *ud, const char *msg, int tocont);
static void warn_off(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont)
{
    if (tocont || *msg != '@')
        return 0;
    if (strcmp(msg + 1, "off") == 0)
        lua_setwarnf(L, warn_off, L);
    else if (strcmp(msg + 1, "on") == 0)
        lua_setwarnf(L, warn_on, L);
    return 1;
}

static void warn_off(void *ud, const char *msg, int tocont) { warn_control(ud, msg, tocont); }

static void warn_cont(void *ud, const char *msg, int tocont)
{
    fputs(msg, stderr);
    if (tocont) {
        lua_setwarnf(ud, warn_cont, ud);
    } else {
        fputs("\n", stderr);
        lua_setwarnf(ud, warn_on, ud);
    }
    fflush(stderr);
}

static void warn_on(void *ud, const char *msg, int tocont)
{
    if (warn_control(ud, msg, tocont))
        return;
    fputs("Lua warning: ", stderr);
    warn_cont(ud, msg, tocont);
}

/* The loaders of native code (package.loadlib, and the C searchers of require), each
 * wrapped: native code may start processes the engine does not know, so once one is
 * called the end-of-run sweep looks for descendants (orphans_note_spawn). A require of
 * a hplua or Lua module is answered before the C searchers. */
static int noting_loader(lua_State *L)
{
    /* noted whatever comes of it: a library may run code when it is opened, even when
     * the symbol asked for is missing (package.loadlib(path, "*") returns true) */
    orphans_note_spawn();
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void wrap_native_loaders(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loadlib");
    lua_pushcclosure(L, noting_loader, 1);
    lua_setfield(L, -2, "loadlib");
    lua_getfield(L, -1, "searchers");
    for (int i = 3; i <= 4; i++) { /* the C searcher and the all-in-one searcher */
        lua_rawgeti(L, -1, i);
        lua_pushcclosure(L, noting_loader, 1);
        lua_rawseti(L, -2, i);
    }
    lua_pop(L, 2);
}

void modules_install(lua_State *L)
{
    wrap_native_loaders(L);
    lua_setwarnf(L, warn_off, L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (int i = 0; hplua_embedded_modules[i].name; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, hplua_embedded_modules[i].name);
    }
    lua_pushcfunction(L, luaopen_hplua_sys);
    lua_setfield(L, -2, "hplua.sys");
    lua_pushcfunction(L, luaopen_hplua_process);
    lua_setfield(L, -2, "hplua.process");
    lua_pushcfunction(L, luaopen_hplua_process_internal);
    lua_setfield(L, -2, "hplua.process.internal");
    lua_pushcfunction(L, luaopen_hplua_json);
    lua_setfield(L, -2, "hplua.json");
    lua_pushcfunction(L, luaopen_hplua_fs);
    lua_setfield(L, -2, "hplua.fs");
    lua_pushcfunction(L, luaopen_hplua_sqlite);
    lua_setfield(L, -2, "hplua.sqlite");
    lua_pushcfunction(L, luaopen_hplua_stream);
    lua_setfield(L, -2, "hplua.stream");
    lua_pushcfunction(L, luaopen_hplua_sandbox);
    lua_setfield(L, -2, "hplua.sandbox");
    lua_pushcfunction(L, luaopen_hplua_http);
    lua_setfield(L, -2, "hplua.http");
    lua_pushcfunction(L, luaopen_hplua_pq);
    lua_setfield(L, -2, "hplua.pq");
    lua_pop(L, 1);
    /* Installed instrument modules (hplua.pc's moduledir, PREFIX/LIBDIR/hplua beside
     * PREFIX/bin/hplua) are found by require. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = 0; /* PREFIX/bin */
        slash = strrchr(exe, '/');
        if (slash)
            *slash = 0; /* PREFIX */
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "cpath");
        lua_pushfstring(L, "%s;%s/%s/?.so", lua_tostring(L, -1), exe, HPLUA_MODDIR_REL);
        lua_setfield(L, -3, "cpath");
        lua_pop(L, 2);
    }
}
