/* os.execute and io.popen through the process engine. The results are standard
 * Lua 5.4's; the differences are that the waits are turns of the event loop (a
 * test's timeout and Ctrl-C cut them, other children keep being served), the
 * children end with the attempt that started them (scope "test") and with the
 * run, and they appear among the run's processes ("os.execute#N", "io.popen#N").
 * A pipe of io.popen is a handle with the methods of a Lua file; io.type and
 * io.close know it. */
#include "lpopen.h"

#include "loop.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POPEN_MT "hplua.popen"
#define WRITE_BACKLOG (1 << 20) /* queued input before write waits for the child */
#define INSTALLED_KEY "hplua.popen.installed"

typedef struct {
    proc *p;
    bool closed, writing;
} lpipe;

static proc_engine *eng(void) { return loop_engine(); }

/* nil, message, errno: luaL_fileresult's failure shape. */
static int fail_errno(lua_State *L, int err, const char *what)
{
    lua_pushnil(L);
    if (what)
        lua_pushfstring(L, "%s: %s", what, strerror(err));
    else
        lua_pushstring(L, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

/* true|nil, "exit"|"signal", code: luaL_execresult's shape. */
static int exec_result(lua_State *L, const proc *p)
{
    if (p->term_signal) {
        lua_pushnil(L);
        lua_pushliteral(L, "signal");
        lua_pushinteger(L, p->term_signal);
    } else {
        if (p->exit_code == 0)
            lua_pushboolean(L, 1);
        else
            lua_pushnil(L);
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, p->exit_code);
    }
    return 3;
}

static const char *command_arg(lua_State *L, int arg)
{
    size_t len;
    const char *cmd = luaL_checklstring(L, arg, &len);
    if (strlen(cmd) != len)
        luaL_argerror(L, arg, "the command contains a NUL byte");
    return cmd;
}

/* Starts `sh -c cmd` under a fresh name kind#N; returns 0 or an errno (err says why). */
static int start_shell(lua_State *L, const char *kind, const char *cmd, unsigned flags, proc **out, char *err,
                       size_t errlen)
{
    static unsigned long seq;
    char name[64];
    do
        snprintf(name, sizeof name, "%s#%lu", kind, ++seq);
    while (proc_find(eng(), name));
    /* A child that reads the terminal stays in hplua's process group: in a group
     * of its own it would be stopped (SIGTTIN) as a background job. */
    if ((flags & PROC_INHERIT_STDIN) && isatty(0))
        flags |= PROC_KEEP_GROUP;
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)cmd, NULL};
    proc_spec s = {.name = name, .path = "/bin/sh", .argv = argv, .flags = flags, .command = cmd};
    return loop_start(L, &s, true, out, err, errlen);
}

static void wait_end(lua_State *L, proc *p)
{
    while (p->state == PROC_RUNNING)
        loop_turn(L, -1, -1, 0, NULL);
}

/* os.execute([command]) */
static int l_execute(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
        return 1;
    }
    const char *cmd = command_arg(L, 1);
    char err[256];
    proc *p;
    int rc = start_shell(L, "os.execute", cmd, PROC_INHERIT_STDIN | PROC_INHERIT_STDOUT | PROC_INHERIT_STDERR, &p, err,
                         sizeof err);
    if (rc)
        return fail_errno(L, rc, NULL);
    wait_end(L, p);
    return exec_result(L, p);
}

/* ---- the pipe handle ---- */

static lpipe *to_pipe(lua_State *L) { return luaL_checkudata(L, 1, POPEN_MT); }

static lpipe *check_open(lua_State *L)
{
    lpipe *f = to_pipe(L);
    if (f->closed)
        luaL_error(L, "attempt to use a closed file");
    return f;
}

/* io.popen(command, [mode]) */
static int l_popen(lua_State *L)
{
    const char *cmd = command_arg(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == 0, 2, "invalid mode");
    lpipe *f = lua_newuserdatauv(L, sizeof *f, 0);
    f->p = NULL;
    f->closed = true; /* born closed: safe whatever fails next */
    f->writing = mode[0] == 'w';
    luaL_setmetatable(L, POPEN_MT);
    unsigned flags = f->writing ? PROC_STREAM_STDIN | PROC_INHERIT_STDOUT | PROC_INHERIT_STDERR
                                : PROC_STREAM_STDOUT | PROC_INHERIT_STDIN | PROC_INHERIT_STDERR;
    char err[256];
    int rc = start_shell(L, "io.popen", cmd, flags, &f->p, err, sizeof err);
    if (rc)
        return fail_errno(L, rc, cmd);
    f->closed = false;
    return 1;
}

/* Waits until unread output is there (true) or the pipe is at its end (false). */
static bool fill(lua_State *L, lpipe *f)
{
    proc *p = f->p;
    while (p->out.len == p->out.off && p->fd_out >= 0)
        loop_turn(L, -1, -1, 0, NULL);
    return p->out.len > p->out.off;
}

static const char *avail(lpipe *f, size_t *n)
{
    *n = f->p->out.len - f->p->out.off;
    return f->p->out.data + f->p->out.off;
}

static void take(lpipe *f, size_t n) { proc_stdout_take(eng(), f->p, n); }

static int read_line(lua_State *L, lpipe *f, bool keep_newline)
{
    luaL_Buffer b;
    bool any = false;
    luaL_buffinit(L, &b);
    while (fill(L, f)) {
        size_t n;
        const char *d = avail(f, &n), *nl = memchr(d, '\n', n);
        if (nl) {
            size_t k = (size_t)(nl - d);
            luaL_addlstring(&b, d, k + keep_newline);
            take(f, k + 1);
            luaL_pushresult(&b);
            return 1;
        }
        luaL_addlstring(&b, d, n);
        take(f, n);
        any = true;
    }
    luaL_pushresult(&b);
    return any;
}

static void read_all(lua_State *L, lpipe *f)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (fill(L, f)) {
        size_t n;
        const char *d = avail(f, &n);
        luaL_addlstring(&b, d, n);
        take(f, n);
    }
    luaL_pushresult(&b);
}

static int read_chars(lua_State *L, lpipe *f, size_t want)
{
    luaL_Buffer b;
    size_t got = 0;
    luaL_buffinit(L, &b);
    while (got < want && fill(L, f)) {
        size_t n;
        const char *d = avail(f, &n);
        if (n > want - got)
            n = want - got;
        luaL_addlstring(&b, d, n);
        take(f, n);
        got += n;
    }
    luaL_pushresult(&b);
    return got > 0;
}

/* A numeral as Lua's reader accepts it: at most 200 characters of sign, 0x,
 * digits, point and exponent, then lua_stringtonumber decides. */
typedef struct {
    lua_State *L;
    lpipe *f;
    int c; /* the next character, EOF at the end */
    size_t n;
    char buf[201];
} numeral;

static int peek(numeral *r)
{
    return r->c = fill(r->L, r->f) ? (unsigned char)r->f->p->out.data[r->f->p->out.off] : EOF;
}

static bool accept(numeral *r)
{
    if (r->n >= sizeof r->buf - 1) {
        r->buf[0] = 0; /* too long: invalid */
        return false;
    }
    r->buf[r->n++] = (char)r->c;
    take(r->f, 1);
    peek(r);
    return true;
}

static bool accept2(numeral *r, const char *set) { return (r->c == set[0] || r->c == set[1]) && accept(r); }

static int digits(numeral *r, bool hex)
{
    int count = 0;
    while (r->c != EOF && (hex ? isxdigit(r->c) : isdigit(r->c)) && accept(r))
        count++;
    return count;
}

static int read_number(lua_State *L, lpipe *f)
{
    numeral r = {.L = L, .f = f};
    int count = 0;
    bool hex = false;
    peek(&r);
    while (r.c != EOF && isspace(r.c)) {
        take(f, 1);
        peek(&r);
    }
    accept2(&r, "-+");
    if (accept2(&r, "00")) {
        if (accept2(&r, "xX"))
            hex = true;
        else
            count = 1;
    }
    count += digits(&r, hex);
    if (accept2(&r, ".."))
        count += digits(&r, hex);
    if (count > 0 && accept2(&r, hex ? "pP" : "eE")) {
        accept2(&r, "-+");
        digits(&r, false);
    }
    r.buf[r.n] = 0;
    if (lua_stringtonumber(L, r.buf))
        return 1;
    lua_pushnil(L);
    return 0;
}

/* file:read's formats from index first on: one value each, nil at the first that fails. */
static int do_read(lua_State *L, lpipe *f, int first)
{
    int nargs = lua_gettop(L) - first + 1, n, success;
    if (f->writing)
        return fail_errno(L, EBADF, NULL);
    if (nargs <= 0) {
        success = read_line(L, f, false);
        n = first + 1;
    } else {
        luaL_checkstack(L, nargs + LUA_MINSTACK, "too many arguments");
        success = 1;
        for (n = first; nargs-- && success; n++) {
            if (lua_type(L, n) == LUA_TNUMBER) {
                lua_Integer l = luaL_checkinteger(L, n);
                if (l == 0) {
                    success = fill(L, f);
                    lua_pushliteral(L, "");
                } else {
                    success = read_chars(L, f, (size_t)l);
                }
            } else {
                const char *fmt = luaL_checkstring(L, n);
                if (*fmt == '*')
                    fmt++;
                switch (*fmt) {
                case 'n':
                    success = read_number(L, f);
                    break;
                case 'l':
                    success = read_line(L, f, false);
                    break;
                case 'L':
                    success = read_line(L, f, true);
                    break;
                case 'a':
                    read_all(L, f);
                    success = 1;
                    break;
                default:
                    return luaL_argerror(L, n, "invalid format");
                }
            }
        }
    }
    if (!success) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return n - first;
}

static int f_read(lua_State *L) { return do_read(L, check_open(L), 2); }

static int lines_next(lua_State *L)
{
    lpipe *f = lua_touserdata(L, lua_upvalueindex(1));
    int n = (int)lua_tointeger(L, lua_upvalueindex(2));
    if (f->closed)
        return luaL_error(L, "file is already closed");
    lua_settop(L, 1);
    luaL_checkstack(L, n, "too many arguments");
    for (int i = 1; i <= n; i++)
        lua_pushvalue(L, lua_upvalueindex(2 + i));
    n = do_read(L, f, 2);
    if (lua_toboolean(L, -n))
        return n;
    if (n > 1 && lua_isstring(L, -n + 1))
        return luaL_error(L, "%s", lua_tostring(L, -n + 1));
    return 0;
}

static int f_lines(lua_State *L)
{
    check_open(L);
    int n = lua_gettop(L) - 1;
    luaL_argcheck(L, n <= 250, 250 + 2, "too many arguments");
    lua_pushvalue(L, 1);
    lua_pushinteger(L, n);
    lua_rotate(L, 2, 2); /* file, count, formats... */
    lua_pushcclosure(L, lines_next, 2 + n);
    return 1;
}

static int f_write(lua_State *L)
{
    lpipe *f = check_open(L);
    int nargs = lua_gettop(L) - 1, err = f->writing ? 0 : EBADF;
    for (int arg = 2; arg <= nargs + 1; arg++) {
        char num[64];
        size_t len;
        const char *s;
        if (lua_type(L, arg) == LUA_TNUMBER) {
            len = (size_t)(lua_isinteger(L, arg)
                               ? snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, arg))
                               : snprintf(num, sizeof num, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, arg)));
            s = num;
        } else {
            s = luaL_checklstring(L, arg, &len);
        }
        if (!err)
            err = proc_stdin_write(eng(), f->p, s, len);
    }
    while (!err && proc_stdin_pending(f->p) > WRITE_BACKLOG)
        loop_turn(L, -1, -1, 0, NULL);
    if (err)
        return fail_errno(L, err, NULL);
    lua_settop(L, 1);
    return 1;
}

static int f_flush(lua_State *L)
{
    lpipe *f = check_open(L);
    while (f->writing && proc_stdin_pending(f->p) > 0)
        loop_turn(L, -1, -1, 0, NULL);
    if (f->writing && f->p->fd_in < 0 && f->p->in.len > f->p->in_off)
        return fail_errno(L, EPIPE, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int f_seek(lua_State *L)
{
    check_open(L);
    return fail_errno(L, ESPIPE, NULL);
}

static int f_setvbuf(lua_State *L)
{
    static const char *const modes[] = {"no", "full", "line", NULL};
    check_open(L);
    luaL_checkoption(L, 2, NULL, modes);
    lua_pushboolean(L, 1);
    return 1;
}

/* No more input or output from our side: the child sees EOF (or SIGPIPE). */
static void release(lpipe *f)
{
    f->closed = true;
    if (f->writing)
        proc_stdin_close(eng(), f->p);
    else
        proc_stdout_close(eng(), f->p);
}

/* close() -> what os.execute would return for the command, after it ends. */
static int f_close(lua_State *L)
{
    lpipe *f = check_open(L);
    release(f);
    wait_end(L, f->p);
    return exec_result(L, f->p);
}

/* <close> waits for the child like close (as Lua's popen files do). */
static int f_toclose(lua_State *L)
{
    lpipe *f = to_pipe(L);
    if (!f->closed) {
        release(f);
        wait_end(L, f->p);
    }
    return 0;
}

/* A collected pipe does not wait: the engine reaps the child, the attempt's end
 * or the run's end terminates it. */
static int f_gc(lua_State *L)
{
    lpipe *f = to_pipe(L);
    if (!f->closed && f->p)
        release(f);
    return 0;
}

static int f_tostring(lua_State *L)
{
    lpipe *f = to_pipe(L);
    if (f->closed)
        lua_pushliteral(L, "file (closed)");
    else
        lua_pushfstring(L, "file (%p)", (void *)f);
    return 1;
}

/* io.type and io.close, knowing the pipes (the originals are upvalue 1). */
static int l_io_type(lua_State *L)
{
    luaL_checkany(L, 1);
    lpipe *f = luaL_testudata(L, 1, POPEN_MT);
    if (f) {
        lua_pushstring(L, f->closed ? "closed file" : "file");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_io_close(lua_State *L)
{
    if (luaL_testudata(L, 1, POPEN_MT))
        return f_close(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void wrap(lua_State *L, int lib, const char *name, lua_CFunction fn)
{
    lua_getfield(L, lib, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, lib, name);
}

/* install_standard_library(): os.execute, io.popen, io.type and io.close become
 * these (once). */
static int l_install(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, INSTALLED_KEY) != LUA_TNIL)
        return 0;
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, INSTALLED_KEY);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "os") == LUA_TTABLE) {
        lua_pushcfunction(L, l_execute);
        lua_setfield(L, -2, "execute");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "io") == LUA_TTABLE) {
        int io = lua_gettop(L);
        lua_pushcfunction(L, l_popen);
        lua_setfield(L, io, "popen");
        wrap(L, io, "type", l_io_type);
        wrap(L, io, "close", l_io_close);
    }
    return 0;
}

void lpopen_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"read", f_read}, {"lines", f_lines},     {"write", f_write}, {"flush", f_flush},
                                       {"seek", f_seek}, {"setvbuf", f_setvbuf}, {"close", f_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", f_gc}, {"__close", f_toclose}, {"__tostring", f_tostring}, {NULL, NULL}};
    /* Only io.popen and os.execute hold them, so an error names them as Lua would. */
    static const luaL_Reg fns[] = {{"install_standard_library", l_install}, {NULL, NULL}};
    if (luaL_newmetatable(L, POPEN_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "FILE*");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 0);
}
