/* hplua.sandbox: test code runs text chunks only. install() replaces load, loadfile,
 * dofile and the Lua file searcher of require (package.searchers[2]) with versions
 * that refuse binary chunks: unverified bytecode can crash the Lua VM (a corrupted
 * dump is not checked by lundump). Everything else behaves as in plain Lua 5.4,
 * down to the error messages, which is why these are C and not Lua wrappers: the
 * argument errors name the function the test called, at the test's line.
 * hplua -e / --exec never call install() and keep plain Lua's behaviour. */
#include "host.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#define REFUSED "binary chunks are refused in test code: unverified bytecode can crash the Lua VM"
#define RESERVEDSLOT 5

/* ---- load(chunk, [chunkname], [mode], [env]) ---- */

/* Reads the chunk like lbaselib's generic_reader, but stops at a first piece that
 * starts a binary chunk (LUA_SIGNATURE) and says so. */
typedef struct {
    int first;
    int binary;
    const char *s; /* a string chunk, or NULL for a reader function */
    size_t len;
} reader;

static const char *read_chunk(lua_State *L, void *ud, size_t *size)
{
    reader *r = ud;
    const char *piece;
    if (r->s) {
        if (!r->first) {
            *size = 0;
            return NULL;
        }
        piece = r->s;
        *size = r->len;
    } else {
        luaL_checkstack(L, 2, "too many nested functions");
        lua_pushvalue(L, 1);
        lua_call(L, 0, 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            *size = 0;
            return NULL;
        }
        if (!lua_isstring(L, -1))
            luaL_error(L, "reader function must return a string");
        lua_replace(L, RESERVEDSLOT);
        piece = lua_tolstring(L, RESERVEDSLOT, size);
    }
    if (r->first && *size > 0) {
        r->first = 0;
        if (piece[0] == LUA_SIGNATURE[0]) {
            r->binary = 1;
            *size = 0;
            return NULL; /* as if empty: the caller refuses it */
        }
    }
    return piece;
}

/* After a load: the function (with env set) or fail plus the message. */
static int load_result(lua_State *L, int status, int envidx)
{
    if (status == LUA_OK) {
        if (envidx != 0) {
            lua_pushvalue(L, envidx);
            if (!lua_setupvalue(L, -2, 1))
                lua_pop(L, 1);
        }
        return 1;
    }
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

static int sandbox_load(lua_State *L)
{
    int status;
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    const char *mode = luaL_optstring(L, 3, "bt");
    int env = !lua_isnone(L, 4) ? 4 : 0;
    reader r = {.first = 1, .s = s, .len = len};
    if (s != NULL) {
        const char *chunkname = luaL_optstring(L, 2, s);
        status = lua_load(L, read_chunk, &r, chunkname, mode);
    } else {
        const char *chunkname = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, RESERVEDSLOT);
        status = lua_load(L, read_chunk, &r, chunkname, mode);
    }
    if (r.binary) {
        lua_pop(L, 1); /* the empty function or the mode error */
        lua_pushliteral(L, REFUSED);
        status = LUA_ERRSYNTAX;
    }
    return load_result(L, status, env);
}

/* ---- loadfile: luaL_loadfilex's steps, refusing a binary file ---- */

typedef struct {
    int n;
    FILE *f;
    char buff[BUFSIZ];
} file_reader;

static const char *read_file(lua_State *L, void *ud, size_t *size)
{
    file_reader *lf = ud;
    (void)L;
    if (lf->n > 0) {
        *size = (size_t)lf->n;
        lf->n = 0;
    } else {
        if (feof(lf->f))
            return NULL;
        *size = fread(lf->buff, 1, sizeof lf->buff, lf->f);
    }
    return lf->buff;
}

static int file_error(lua_State *L, const char *what, int fnameindex)
{
    const char *serr = strerror(errno);
    const char *filename = lua_tostring(L, fnameindex) + 1;
    lua_pushfstring(L, "cannot %s %s: %s", what, filename, serr);
    lua_remove(L, fnameindex);
    return LUA_ERRFILE;
}

static int skip_bom(FILE *f)
{
    int c = getc(f);
    if (c == 0xEF && getc(f) == 0xBB && getc(f) == 0xBF)
        return getc(f);
    return c;
}

static int skip_comment(FILE *f, int *cp)
{
    int c = *cp = skip_bom(f);
    if (c == '#') {
        do
            c = getc(f);
        while (c != EOF && c != '\n');
        *cp = getc(f);
        return 1;
    }
    return 0;
}

static int load_file_text(lua_State *L, const char *filename, const char *mode)
{
    file_reader lf;
    int c;
    int fnameindex = lua_gettop(L) + 1;
    if (filename == NULL) {
        lua_pushliteral(L, "=stdin");
        lf.f = stdin;
    } else {
        lua_pushfstring(L, "@%s", filename);
        errno = 0;
        lf.f = fopen(filename, "r");
        if (lf.f == NULL)
            return file_error(L, "open", fnameindex);
    }
    lf.n = 0;
    if (skip_comment(lf.f, &c))
        lf.buff[lf.n++] = '\n';
    if (c == LUA_SIGNATURE[0]) {
        if (filename)
            fclose(lf.f);
        lua_settop(L, fnameindex - 1);
        lua_pushliteral(L, REFUSED);
        return LUA_ERRSYNTAX;
    }
    if (c != EOF)
        lf.buff[lf.n++] = (char)c;
    errno = 0;
    int status = lua_load(L, read_file, &lf, lua_tostring(L, -1), mode);
    int readstatus = ferror(lf.f);
    if (filename)
        fclose(lf.f);
    if (readstatus) {
        lua_settop(L, fnameindex);
        return file_error(L, "read", fnameindex);
    }
    lua_remove(L, fnameindex);
    return status;
}

static int sandbox_loadfile(lua_State *L)
{
    const char *fname = luaL_optstring(L, 1, NULL);
    const char *mode = luaL_optstring(L, 2, NULL);
    int env = !lua_isnone(L, 3) ? 3 : 0;
    int status = load_file_text(L, fname, mode);
    return load_result(L, status, env);
}

static int dofile_cont(lua_State *L, int d1, lua_KContext d2)
{
    (void)d1;
    (void)d2;
    return lua_gettop(L) - 1;
}

static int sandbox_dofile(lua_State *L)
{
    const char *fname = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (load_file_text(L, fname, NULL) != LUA_OK)
        return lua_error(L);
    lua_callk(L, 0, LUA_MULTRET, 0, dofile_cont);
    return dofile_cont(L, 0, 0);
}

/* ---- require: the Lua file searcher, loading text only ----
 * Upvalues: the package table and the original package.searchpath. */
static int searcher_text(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, lua_upvalueindex(1), "path");
    const char *path = lua_tostring(L, -1);
    if (path == NULL)
        luaL_error(L, "'package.%s' must be a string", "path");
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushstring(L, name);
    lua_pushstring(L, path);
    lua_call(L, 2, 2); /* searchpath(name, path) -> filename | nil, message */
    if (lua_isnil(L, -2))
        return 1; /* "no file ..." */
    lua_pop(L, 1);
    const char *filename = lua_tostring(L, -1);
    if (load_file_text(L, filename, NULL) == LUA_OK) {
        lua_pushstring(L, filename);
        return 2;
    }
    /* An error raised inside the parser (a module that requires itself runs out of
     * C stack while loading) went through the guard's message handler, which makes
     * an information table of it: take its message, never print "(null)". */
    const char *msg = lua_tostring(L, -1);
    if (!msg && lua_istable(L, -1) && lua_getfield(L, -1, "message") == LUA_TSTRING)
        msg = lua_tostring(L, -1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", lua_tostring(L, 1), filename, msg);
}

/* install(): from now on, test code loads text chunks only. Returns nothing. */
static int sandbox_install(lua_State *L)
{
    lua_pushcfunction(L, sandbox_load);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, sandbox_loadfile);
    lua_setglobal(L, "loadfile");
    lua_pushcfunction(L, sandbox_dofile);
    lua_setglobal(L, "dofile");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, LUA_LOADLIBNAME) != LUA_TTABLE)
        return luaL_error(L, "sandbox: the package library is not loaded");
    int package = lua_gettop(L);
    lua_getfield(L, package, "searchers");
    lua_getfield(L, package, "searchpath");
    if (!lua_istable(L, -2) || !lua_isfunction(L, -1))
        return luaL_error(L, "sandbox: package.searchers or package.searchpath is missing");
    lua_pushvalue(L, package);
    lua_insert(L, -2);
    lua_pushcclosure(L, searcher_text, 2);
    lua_rawseti(L, -2, 2);
    return 0;
}

int luaopen_hplua_sandbox(lua_State *L)
{
    static const luaL_Reg fns[] = {{"install", sandbox_install}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushliteral(L, REFUSED);
    lua_setfield(L, -2, "refused");
    return 1;
}
