/* hplua.process: the Lua binding of the process engine (proc.c, through the
 * loop), and hplua.process.internal: the runner's private entry points, which
 * refuse to be called from test code. */
#include "crossings.h"
#include "host.h"
#include "loop.h"
#include "lpopen.h"

#include "clock.h"
#include "heap.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDLE_MT "hplua.process.handle"


#define engine (*loop_engine())

/* A NUL byte would silently cut a C string short: an error naming the argument. */
#define HAS_NUL(s, len) (strlen(s) != (len))

static int nul_error(lua_State *L, int arg, const char *what)
{
    return luaL_argerror(L, arg, lua_pushfstring(L, "%s contains a NUL byte", what));
}

static proc *check_name(lua_State *L, int arg)
{
    const char *name = luaL_checkstring(L, arg);
    proc *p = proc_find(&engine, name);
    if (!p)
        luaL_argerror(L, arg, lua_pushfstring(L, "no process named '%s'", name));
    return p;
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* A child's output as a Lua string (crossings.c: a finished one becomes its string
 * once, without a copy, and is kept). */
static void push_output(lua_State *L, proc *p, proc_buf *b, bool open)
{
    crossing_push_output(L, p, b, open, engine.buf_headroom);
}

/* The common part of a result and of what a wait that timed out returns. */
static void push_common(lua_State *L, proc *p)
{
    char when[48];
    lua_createtable(L, 0, 13);
    set_str(L, "name", p->name);
    set_int(L, "pid", p->pid);
    set_str(L, "command", p->command);
    push_output(L, p, &p->out, p->fd_out >= 0);
    lua_setfield(L, -2, "stdout");
    push_output(L, p, &p->err, p->fd_err >= 0);
    lua_setfield(L, -2, "stderr");
    clock_iso8601(p->start_wall, when, sizeof when);
    set_str(L, "started_at", when);
    set_bool(L, "timed_out", p->timed_out);
    set_bool(L, "terminated", p->terminated);
}

/* A result: { name, pid, command, exit_code | signal, stdout, stderr, started_at,
 * ended_at, duration, timed_out, terminated, max_rss_kb (when known) }. */
static void push_result(lua_State *L, proc *p)
{
    char when[48];
    push_common(L, p);
    if (p->term_signal)
        set_int(L, "signal", p->term_signal);
    else
        set_int(L, "exit_code", p->exit_code);
    clock_iso8601(p->end_wall, when, sizeof when);
    set_str(L, "ended_at", when);
    set_num(L, "duration", p->end_mono - p->start_mono);
    if (p->max_rss_kb > 0)
        set_int(L, "max_rss_kb", p->max_rss_kb);
}

/* What a running child has done so far: no exit_code, ended_at; running = true. */
static void push_partial(lua_State *L, proc *p)
{
    push_common(L, p);
    set_num(L, "duration", clock_mono() - p->start_mono);
    set_bool(L, "running", true);
}

static void push_any(lua_State *L, proc *p)
{
    if (p->state == PROC_RUNNING)
        push_partial(L, p);
    else
        push_result(L, p);
}

/* ---- start ---- */

static const char *opt_string(lua_State *L, int opts, const char *field)
{
    int t = lua_getfield(L, opts, field);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TSTRING)
        luaL_argerror(L, opts, lua_pushfstring(L, "option '%s' must be a string, got %s", field, luaL_typename(L, -1)));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (HAS_NUL(s, len))
        nul_error(L, opts, lua_pushfstring(L, "option '%s'", field));
    return s; /* left on the stack: anchored until start returns */
}

static void check_opts(lua_State *L, int opts)
{
    static const char *const known[] = {"env",    "cwd",   "stdin",  "timeout", "on_line",
                                        "stderr", "scope", "output", NULL};
    lua_pushnil(L);
    while (lua_next(L, opts)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (int i = 0; known[i]; i++)
                ok |= strcmp(lua_tostring(L, -2), known[i]) == 0;
        if (!ok)
            luaL_argerror(L, opts, lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -2, NULL)));
        lua_pop(L, 1);
    }
}

/* Builds argv (command at index cmd) into scratch userdata; returns it. */
static char **build_argv(lua_State *L, int cmd, int *shell)
{
    if (lua_type(L, cmd) == LUA_TSTRING) {
        size_t len;
        const char *text = lua_tolstring(L, cmd, &len);
        if (HAS_NUL(text, len))
            nul_error(L, cmd, "the shell command");
        char **argv = lua_newuserdatauv(L, 4 * sizeof *argv, 0);
        argv[0] = (char *)"sh";
        argv[1] = (char *)"-c";
        argv[2] = (char *)text;
        argv[3] = NULL;
        *shell = 1;
        return argv;
    }
    luaL_argexpected(L, lua_type(L, cmd) == LUA_TTABLE, cmd, "table (argv) or string (shell command)");
    lua_Integer n = luaL_len(L, cmd);
    if (n < 1)
        luaL_argerror(L, cmd, "argv table is empty");
    if (n > INT_MAX / 2)
        luaL_argerror(L, cmd, "argv table is too long");
    char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 1);
    lua_newtable(L); /* keeps numbers converted to strings alive */
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_geti(L, cmd, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_argerror(L, cmd,
                          lua_pushfstring(L, "argv[%d] must be a string, got %s", (int)i, luaL_typename(L, -1)));
        size_t len;
        argv[i - 1] = (char *)lua_tolstring(L, -1, &len);
        if (HAS_NUL(argv[i - 1], len))
            nul_error(L, cmd, lua_pushfstring(L, "argv[%d]", (int)i));
        lua_rawseti(L, -2, i);
    }
    lua_setiuservalue(L, -2, 1);
    argv[n] = NULL;
    *shell = 0;
    return argv;
}

extern char **environ;

/* Merges opts.env into the environment; returns NULL when there is nothing to
 * merge. The run token (HPLUA_RUNS) was set at start-up, so it is in the copy. */
static char **build_env(lua_State *L, int opts, const char **path_env)
{
    *path_env = getenv("PATH");
    if (opts == 0 || lua_getfield(L, opts, "env") == LUA_TNIL) {
        if (opts)
            lua_pop(L, 1);
        return NULL;
    }
    int env = lua_gettop(L);
    if (!lua_istable(L, env))
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'env' must be a table, got %s", luaL_typename(L, env)));
    size_t base = 0, extra = 0;
    while (environ[base])
        base++;
    lua_pushnil(L);
    while (lua_next(L, env)) {
        size_t len;
        if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '=') || !*lua_tostring(L, -2))
            luaL_argerror(L, opts, "env keys must be variable names");
        const char *key = lua_tolstring(L, -2, &len);
        if (HAS_NUL(key, len))
            nul_error(L, opts, lua_pushfstring(L, "env key '%s'", key));
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER && !(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
            luaL_argerror(L, opts, lua_pushfstring(L, "env.%s must be a string, number or false", key));
        if (vt == LUA_TSTRING && HAS_NUL(lua_tolstring(L, -1, &len), len))
            nul_error(L, opts, lua_pushfstring(L, "env.%s", key));
        extra++;
        lua_pop(L, 1);
    }
    char **envp = lua_newuserdatauv(L, (base + extra + 1) * sizeof *envp, 1);
    lua_newtable(L); /* keeps the KEY=VALUE strings alive */
    int keep = lua_gettop(L);
    size_t n = 0;
    for (size_t i = 0; i < base; i++) {
        const char *eq = strchr(environ[i], '=');
        if (eq) {
            lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
            int overridden = lua_rawget(L, env) != LUA_TNIL;
            lua_pop(L, 1);
            if (overridden)
                continue;
        }
        envp[n++] = environ[i];
    }
    lua_pushnil(L);
    while (lua_next(L, env)) {
        if (lua_type(L, -1) != LUA_TBOOLEAN) {
            const char *kv = lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
            lua_rawseti(L, keep, (lua_Integer)n + 1);
            envp[n++] = (char *)kv;
            if (strcmp(lua_tostring(L, -2), "PATH") == 0)
                *path_env = kv + 5;
        } else if (strcmp(lua_tostring(L, -2), "PATH") == 0) {
            *path_env = NULL;
        }
        lua_pop(L, 1);
    }
    envp[n] = NULL;
    lua_setiuservalue(L, -2, 1);
    return envp;
}

static void push_handle(lua_State *L, proc *p)
{
    proc **h = lua_newuserdatauv(L, sizeof *h, 0);
    *h = p;
    luaL_setmetatable(L, HANDLE_MT);
}

/* Reads the options other than env into s; returns whether scope is "test". */
static bool read_opts(lua_State *L, int opts, proc_spec *s)
{
    s->cwd = opt_string(L, opts, "cwd");
    size_t len = 0;
    int t = lua_getfield(L, opts, "stdin");
    if (t != LUA_TNIL && t != LUA_TSTRING)
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'stdin' must be a string, got %s", luaL_typename(L, -1)));
    s->stdin_data = lua_tolstring(L, -1, &len);
    s->stdin_len = len;
    t = lua_getfield(L, opts, "timeout");
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            luaL_argerror(L, opts,
                          lua_pushfstring(L, "option 'timeout' must be a number, got %s", luaL_typename(L, -1)));
        s->timeout = lua_tonumber(L, -1);
        if (!(s->timeout >= 0))
            luaL_argerror(L, opts, "option 'timeout' must not be negative");
    }
    const char *se = opt_string(L, opts, "stderr");
    if (se && strcmp(se, "stdout") == 0)
        s->merge_stderr = true;
    else if (se && strcmp(se, "pipe") != 0)
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'stderr' must be \"pipe\" or \"stdout\", got \"%s\"", se));
    t = lua_getfield(L, opts, "on_line");
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'on_line' must be a function, got %s", luaL_typename(L, -1)));
    s->output = opt_string(L, opts, "output");
    if (s->output && (se || t != LUA_TNIL))
        luaL_argerror(L, opts, "option 'output' sends stdout and stderr to a file: 'stderr' and 'on_line' cannot be used with it");
    const char *scope = opt_string(L, opts, "scope");
    if (scope && strcmp(scope, "test") != 0 && strcmp(scope, "run") != 0)
        luaL_argerror(L, opts, lua_pushfstring(L, "option 'scope' must be \"test\" or \"run\", got \"%s\"", scope));
    return scope && strcmp(scope, "test") == 0;
}

static int start_common(lua_State *L, int lua_child)
{
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    int opts = lua_isnoneornil(L, 3) ? 0 : 3;
    luaL_argcheck(L, *name, 1, "process name must not be empty");
    if (HAS_NUL(name, name_len))
        nul_error(L, 1, "process name");
    proc *same = proc_find(&engine, name);
    if (same && same->state == PROC_RUNNING)
        luaL_argerror(L, 1,
                      lua_pushfstring(L, "process name '%s' is already used by a running process (pid %d)", name,
                                      (int)same->pid));
    if (opts) {
        luaL_checktype(L, 3, LUA_TTABLE);
        check_opts(L, 3);
    }
    lua_settop(L, 3);
    proc_spec s;
    memset(&s, 0, sizeof s);
    s.name = name;
    int shell = 0;
    char **argv;
    char exe[PATH_MAX];
    if (lua_child) {
        size_t len;
        const char *code = luaL_checklstring(L, 2, &len);
        if (HAS_NUL(code, len))
            nul_error(L, 2, "the Lua code");
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n < 0)
            return luaL_error(L, "cannot find the hplua executable: %s", strerror(errno));
        exe[n] = 0;
        argv = lua_newuserdatauv(L, 4 * sizeof *argv, 0);
        argv[0] = exe;
        argv[1] = (char *)"-e";
        argv[2] = (char *)code;
        argv[3] = NULL;
        char *shown = proc_quote_argv((char *const[]){(char *)"hplua", (char *)"-e", (char *)code, NULL});
        if (!shown)
            return luaL_error(L, "out of memory");
        s.command = lua_pushstring(L, shown);
        free(shown);
    } else {
        argv = build_argv(L, 2, &shell);
    }
    s.argv = argv;
    bool scope_test = opts ? read_opts(L, opts, &s) : false;
    const char *path_env;
    s.envp = build_env(L, opts, &path_env);
    char path[PATH_MAX], err[256];
    const char *shown = shell || lua_child ? NULL : argv[0];
    int rc = lua_child ? 0 : proc_resolve(argv[0], path_env, path, sizeof path);
    s.path = lua_child ? exe : shell ? "/bin/sh" : path;
    if (rc) {
        snprintf(err, sizeof err, "%s", rc == ENOENT ? "command not found" : strerror(rc));
    } else {
        proc *p;
        rc = loop_start(L, &s, scope_test, &p, err, sizeof err);
        if (!rc) {
            if (opts && lua_getfield(L, opts, "on_line") == LUA_TFUNCTION) {
                crossing_set_line_callback(L, p, -1);
                loop_add_line_reader(p);
            }
            push_handle(L, p);
            return 1;
        }
    }
    return luaL_error(L, "cannot start process '%s' (%s): %s", name, shown ? shown : shell ? "/bin/sh" : "hplua", err);
}

static int p_start(lua_State *L) { return start_common(L, 0); }
static int p_lua(lua_State *L) { return start_common(L, 1); }

/* ---- queries: fresh (they read pipes and reap) but never run Lua callbacks ---- */

static int collect_proc(lua_State *L, proc *p)
{
    loop_drain();
    if (p->state == PROC_RUNNING)
        return 0;
    push_result(L, p);
    return 1;
}

static int alive_proc(lua_State *L, proc *p)
{
    loop_drain();
    lua_pushboolean(L, p->state == PROC_RUNNING);
    return 1;
}

static int p_collect(lua_State *L) { return collect_proc(L, check_name(L, 1)); }
static int p_alive(lua_State *L) { return alive_proc(L, check_name(L, 1)); }

static int p_names(lua_State *L)
{
    lua_createtable(L, (int)engine.n, 0);
    for (size_t i = 0; i < engine.n; i++) {
        lua_pushstring(L, engine.procs[i]->name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* By name; a name started more than once gives its latest finished run. */
static int p_results(lua_State *L)
{
    loop_drain();
    lua_newtable(L);
    for (size_t i = 0; i < engine.n; i++)
        if (engine.procs[i]->state != PROC_RUNNING) {
            push_result(L, engine.procs[i]);
            lua_setfield(L, -2, engine.procs[i]->name);
        }
    return 1;
}

/* ---- waits: turns of the loop, where callbacks run ---- */

/* Waits for procs[0..n) until all ended or timeout (<0: none). Returns the
 * results by name, or nil, "timeout", the results of those that finished. */
static int wait_list(lua_State *L, proc **procs, size_t n, double timeout)
{
    double end = timeout >= 0 ? clock_mono() + timeout : 0;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += procs[i]->state != PROC_RUNNING;
        if (done == n) {
            loop_turn(L, 0, -1, 0, NULL); /* deliver the last lines and end events */
            lua_createtable(L, 0, (int)n);
            for (size_t i = 0; i < n; i++) {
                push_result(L, procs[i]);
                lua_setfield(L, -2, procs[i]->name);
            }
            return 1;
        }
        double left = timeout >= 0 ? end - clock_mono() : -1;
        if (timeout >= 0 && left <= 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            lua_newtable(L);
            for (size_t i = 0; i < n; i++)
                if (procs[i]->state != PROC_RUNNING) {
                    push_result(L, procs[i]);
                    lua_setfield(L, -2, procs[i]->name);
                }
            return 3;
        }
        loop_turn(L, left, -1, 0, NULL);
    }
}

static double opt_timeout(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return -1;
    double t = luaL_checknumber(L, arg);
    luaL_argcheck(L, t >= 0, arg, "timeout must not be negative");
    return t;
}

/* wait([names], [timeout]) */
static int p_wait(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_pushnil(L);
        lua_insert(L, 1);
    }
    double timeout = opt_timeout(L, 2);
    size_t n = 0;
    proc **procs;
    if (lua_isnoneornil(L, 1)) {
        procs = lua_newuserdatauv(L, (engine.n + 1) * sizeof *procs, 0);
        for (size_t i = 0; i < engine.n; i++)
            if (proc_find(&engine, engine.procs[i]->name) == engine.procs[i]) /* the latest of each name */
                procs[n++] = engine.procs[i];
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        procs = lua_newuserdatauv(L, sizeof *procs, 0);
        procs[n++] = check_name(L, 1);
    } else {
        luaL_argexpected(L, lua_istable(L, 1), 1, "name, table of names or nil");
        lua_Integer len = luaL_len(L, 1);
        procs = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *procs, 0);
        for (lua_Integer i = 1; i <= len; i++) {
            if (lua_geti(L, 1, i) != LUA_TSTRING)
                luaL_argerror(L, 1, lua_pushfstring(L, "names[%d] must be a string", (int)i));
            proc *p = proc_find(&engine, lua_tostring(L, -1));
            if (!p)
                luaL_argerror(L, 1, lua_pushfstring(L, "no process named '%s'", lua_tostring(L, -1)));
            procs[n++] = p;
            lua_pop(L, 1);
        }
    }
    return wait_list(L, procs, n, timeout);
}

static double opt_grace(lua_State *L, int arg)
{
    double g = luaL_optnumber(L, arg, 3.0);
    luaL_argcheck(L, g >= 0, arg, "grace must not be negative");
    return g;
}

static void terminate_and_wait(lua_State *L, proc **procs, size_t n, double grace)
{
    for (size_t i = 0; i < n; i++)
        proc_terminate(&engine, procs[i], grace);
    for (;;) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++)
            live += procs[i]->state == PROC_RUNNING;
        if (!live)
            break;
        loop_turn(L, -1, -1, 0, NULL);
    }
    loop_turn(L, 0, -1, 0, NULL);
}

static int p_terminate(lua_State *L)
{
    proc *p = check_name(L, 1);
    terminate_and_wait(L, &p, 1, opt_grace(L, 2));
    push_result(L, p);
    return 1;
}

static int p_terminate_all(lua_State *L)
{
    double grace = opt_grace(L, 1);
    proc **procs = lua_newuserdatauv(L, (engine.running + 1) * sizeof *procs, 0);
    size_t n = engine.running;
    memcpy(procs, engine.live, n * sizeof *procs);
    terminate_and_wait(L, procs, n, grace);
    lua_newtable(L);
    for (size_t i = 0; i < n; i++) {
        push_result(L, procs[i]);
        lua_setfield(L, -2, procs[i]->name);
    }
    return 1;
}

/* ---- handles ---- */

static proc *check_handle(lua_State *L)
{
    proc *p = *(proc **)luaL_checkudata(L, 1, HANDLE_MT);
    if (!p)
        luaL_error(L, "process handle used after it was collected");
    return p;
}

/* The engine owns the child; a collected handle only forgets it. */
static int h_gc(lua_State *L)
{
    *(proc **)luaL_checkudata(L, 1, HANDLE_MT) = NULL;
    return 0;
}

static int h_collect(lua_State *L) { return collect_proc(L, check_handle(L)); }
static int h_alive(lua_State *L) { return alive_proc(L, check_handle(L)); }

/* wait([timeout]) -> result | nil, "timeout", what it has done so far */
static int h_wait(lua_State *L)
{
    proc *p = check_handle(L);
    int n = wait_list(L, &p, 1, opt_timeout(L, 2));
    if (n == 1) {
        lua_getfield(L, -1, p->name);
        return 1;
    }
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    push_partial(L, p);
    return 3;
}

static int h_terminate(lua_State *L)
{
    proc *p = check_handle(L);
    terminate_and_wait(L, &p, 1, opt_grace(L, 2));
    push_result(L, p);
    return 1;
}

static int h_close(lua_State *L)
{
    proc *p = check_handle(L);
    if (p->state == PROC_RUNNING)
        terminate_and_wait(L, &p, 1, 3.0);
    return 0;
}

static int h_index(lua_State *L)
{
    proc *p = check_handle(L);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "name") == 0)
        lua_pushstring(L, p->name);
    else if (strcmp(k, "pid") == 0)
        lua_pushinteger(L, p->pid);
    else {
        luaL_getmetatable(L, HANDLE_MT);
        lua_getfield(L, -1, "methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int h_tostring(lua_State *L)
{
    proc *p = check_handle(L);
    lua_pushfstring(L, "process %s (pid %d, %s)", p->name, (int)p->pid, p->state == PROC_RUNNING ? "running" : "ended");
    return 1;
}

/* ---- hplua.process.internal: the runner's ---- */

/* Test code must not end the run's children or take over its handlers: the
 * nearest Lua caller must be the host's own code ("@hplua:" chunks). */
static void check_private(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "S", &ar);
        if (*ar.what == 'C')
            continue;
        if (strncmp(ar.source, "@hplua:", 7) == 0)
            return;
        break;
    }
    luaL_error(L, "hplua.process.internal is private to the runner");
}

/* cleanup(grace) -> how many were running: the end-of-run guarantee, every child
 * and descendant ends. No on_line callback runs: the run is over. */
static int i_cleanup(lua_State *L)
{
    check_private(L);
    double grace = opt_grace(L, 1);
    int live = (int)engine.running;
    proc_terminate_everything(&engine, grace);
    loop_announce_ends(L);
    lua_pushinteger(L, live);
    return 1;
}

static int i_begin_attempt(lua_State *L)
{
    check_private(L);
    loop_begin_attempt();
    return 0;
}

/* end_attempt([grace]): scope = "test" children of the attempt end with it. */
static int i_end_attempt(lua_State *L)
{
    check_private(L);
    loop_end_attempt(L, opt_grace(L, 1));
    return 0;
}

static int i_set_event_handler(lua_State *L)
{
    check_private(L);
    crossing_set_event_handler(L, 1);
    return 0;
}

static int i_set_message_handler(lua_State *L)
{
    check_private(L);
    crossing_set_message_handler(L, 1);
    return 0;
}

/* history() -> every run of every child, in start order (a running one partial). */
static int i_history(lua_State *L)
{
    check_private(L);
    loop_drain();
    lua_createtable(L, (int)engine.n, 0);
    for (size_t i = 0; i < engine.n; i++) {
        push_any(L, engine.procs[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* The bytes before a long string's contents, as the allocator sees them; the
 * engine keeps that much room before its buffers (see push_output). */
static void probe_string_header(lua_State *L)
{
    char probe[100];
    memset(probe, 'x', sizeof probe);
    heap_probe(LUA_TSTRING);
    lua_pushlstring(L, probe, sizeof probe); /* a long string: allocated, never interned */
    size_t n = heap_probe_end();
    lua_pop(L, 1);
    if (n > sizeof probe + 1 && n - sizeof probe - 1 <= 64 && engine.n == 0)
        engine.buf_headroom = n - sizeof probe - 1;
}

int luaopen_hplua_process(lua_State *L)
{
    static const luaL_Reg fns[] = {{"start", p_start},
                                   {"lua", p_lua},
                                   {"collect", p_collect},
                                   {"wait", p_wait},
                                   {"alive", p_alive},
                                   {"names", p_names},
                                   {"results", p_results},
                                   {"terminate", p_terminate},
                                   {"terminate_all", p_terminate_all},
                                   {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"collect", h_collect}, {"wait", h_wait}, {"alive", h_alive}, {"terminate", h_terminate}, {NULL, NULL}};
    /* The handle does not own the child (the engine does): collecting it changes
     * nothing for the child, while <close> ends the child if it still runs. */
    static const luaL_Reg meta[] = {
        {"__index", h_index}, {"__close", h_close}, {"__gc", h_gc}, {"__tostring", h_tostring}, {NULL, NULL}};
    if (luaL_newmetatable(L, HANDLE_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
    probe_string_header(L);
    luaL_newlib(L, fns);
    return 1;
}

int luaopen_hplua_process_internal(lua_State *L)
{
    static const luaL_Reg fns[] = {{"cleanup", i_cleanup},
                                   {"begin_attempt", i_begin_attempt},
                                   {"end_attempt", i_end_attempt},
                                   {"set_event_handler", i_set_event_handler},
                                   {"set_message_handler", i_set_message_handler},
                                   {"history", i_history},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lpopen_register(L); /* execute, popen, install_standard_library */
    return 1;
}
