/* hplua.process: the Lua binding of the process engine (proc.c). */
#include "clock.h"
#include "host.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDLE_MT "hplua.process.handle"
#define STATE_KEY "hplua.process.state" /* registry: { on_line = {name = fn}, message = fn } */

static proc_engine engine;

proc_engine *host_engine(void) { return &engine; }

static void push_state(lua_State *L, const char *field)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
    }
    if (field) {
        if (lua_getfield(L, -1, field) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, field);
        }
        lua_remove(L, -2);
    }
}

void host_message(lua_State *L, const char *key, const char *text)
{
    push_state(L, NULL);
    if (lua_getfield(L, -1, "message") == LUA_TFUNCTION) {
        lua_pushstring(L, text);
        if (key)
            lua_pushstring(L, key);
        else
            lua_pushnil(L);
        lua_call(L, 2, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static size_t count_lines(const proc_buf *b)
{
    size_t n = 0;
    const char *p = b->data, *end = b->data + b->len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    if (b->len && b->data[b->len - 1] != '\n')
        n++;
    return n;
}

static void announce_end(lua_State *L, proc *p)
{
    char when[48], status[64], text[512];
    clock_iso8601(p->end_wall, when, sizeof when);
    if (p->term_signal)
        snprintf(status, sizeof status, "signal %d", p->term_signal);
    else
        snprintf(status, sizeof status, "exit code %d", p->exit_code);
    snprintf(text, sizeof text, "Process %s finished at %s (duration: %.2fs, %s%s%s; stdout: %zu lines, stderr: %zu lines)",
             p->name, when, p->end_mono - p->start_mono, status, p->timed_out ? ", timed out" : "",
             p->terminated ? ", terminated" : "", count_lines(&p->out), count_lines(&p->err));
    host_message(L, NULL, text);
}

/* Children with an on_line callback, until their last line is delivered. */
static proc *line_procs;

/* Runs on_line callbacks for complete lines (and the last partial line once the
 * child has ended). Raises what a callback raises; the cursor moves first. */
static void deliver_lines(lua_State *L)
{
    if (!line_procs)
        return;
    push_state(L, "on_line");
    int cbs = lua_gettop(L);
    for (proc **link = &line_procs; *link;) {
        proc *p = *link;
        if (p->lines_seen < p->out.len && lua_getfield(L, cbs, p->name) == LUA_TFUNCTION) {
            int fn = lua_gettop(L);
            for (;;) {
                const char *start = p->out.data + p->lines_seen;
                size_t left = p->out.len - p->lines_seen;
                const char *nl = memchr(start, '\n', left);
                size_t len = nl ? (size_t)(nl - start) : left;
                if (!nl && (p->state == PROC_RUNNING || !left))
                    break;
                p->lines_seen += nl ? len + 1 : len;
                lua_pushvalue(L, fn);
                lua_pushlstring(L, start, len);
                lua_call(L, 1, 0);
            }
        }
        lua_settop(L, cbs);
        if (p->state != PROC_RUNNING && p->lines_seen == p->out.len)
            *link = p->line_next; /* all delivered: off the list */
        else
            link = &p->line_next;
    }
    lua_pop(L, 1);
}

static void announce_ends(lua_State *L)
{
    if (!engine.unreported)
        return;
    engine.unreported = 0;
    for (size_t i = 0; i < engine.n; i++) {
        proc *p = engine.procs[i];
        if (p->state == PROC_EXITED && !p->reported) {
            p->reported = true;
            announce_end(L, p);
        }
    }
}

int host_turn(lua_State *L, double timeout, int fd, short events, short *revents)
{
    guard_check(L);
    double dl = guard_deadline();
    if (dl) {
        double left = dl - clock_mono();
        if (left < 0)
            left = 0;
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    guard_waiting(1);
    int ev = proc_poll(&engine, timeout, fd, events, revents);
    guard_waiting(0);
    deliver_lines(L);
    announce_ends(L);
    guard_check(L);
    return ev;
}

int host_wait(lua_State *L, int fd, short events, double timeout)
{
    double end = timeout >= 0 ? clock_mono() + timeout : 0;
    for (;;) {
        double left = timeout >= 0 ? end - clock_mono() : -1;
        if (timeout >= 0 && left <= 0)
            return 0;
        short revents = 0;
        if (host_turn(L, left, fd, events, &revents) & PROC_EV_EXTRA)
            return 1;
    }
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

static void push_result(lua_State *L, proc *p)
{
    char when[48];
    lua_createtable(L, 0, 12);
    lua_pushstring(L, p->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, p->pid);
    lua_setfield(L, -2, "pid");
    lua_pushstring(L, p->command);
    lua_setfield(L, -2, "command");
    if (p->term_signal) {
        lua_pushinteger(L, p->term_signal);
        lua_setfield(L, -2, "signal");
    } else {
        lua_pushinteger(L, p->exit_code);
        lua_setfield(L, -2, "exit_code");
    }
    lua_pushlstring(L, p->out.data ? p->out.data : "", p->out.len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, p->err.data ? p->err.data : "", p->err.len);
    lua_setfield(L, -2, "stderr");
    clock_iso8601(p->start_wall, when, sizeof when);
    lua_pushstring(L, when);
    lua_setfield(L, -2, "started_at");
    clock_iso8601(p->end_wall, when, sizeof when);
    lua_pushstring(L, when);
    lua_setfield(L, -2, "ended_at");
    set_num(L, "duration", p->end_mono - p->start_mono);
    lua_pushinteger(L, p->max_rss_kb);
    lua_setfield(L, -2, "max_rss_kb");
    lua_pushboolean(L, p->timed_out);
    lua_setfield(L, -2, "timed_out");
    lua_pushboolean(L, p->terminated);
    lua_setfield(L, -2, "terminated");
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
    return lua_tostring(L, -1); /* left on the stack: anchored until start returns */
}

static void check_opts(lua_State *L, int opts)
{
    static const char *const known[] = {"env", "cwd", "stdin", "timeout", "on_line", "stderr", NULL};
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
        char **argv = lua_newuserdatauv(L, 4 * sizeof *argv, 0);
        argv[0] = (char *)"sh";
        argv[1] = (char *)"-c";
        argv[2] = (char *)lua_tostring(L, cmd);
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
            luaL_argerror(L, cmd, lua_pushfstring(L, "argv[%d] must be a string, got %s", (int)i, luaL_typename(L, -1)));
        argv[i - 1] = (char *)lua_tostring(L, -1);
        lua_rawseti(L, -2, i);
    }
    lua_setiuservalue(L, -2, 1);
    argv[n] = NULL;
    *shell = 0;
    return argv;
}

extern char **environ;

/* Merges opts.env into the environment; returns NULL when there is nothing to merge. */
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
        if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '=') || !*lua_tostring(L, -2))
            luaL_argerror(L, opts, "env keys must be variable names");
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER && !(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
            luaL_argerror(L, opts, lua_pushfstring(L, "env.%s must be a string, number or false", lua_tostring(L, -2)));
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

static int start_common(lua_State *L, int lua_child)
{
    const char *name = luaL_checkstring(L, 1);
    int opts = lua_isnoneornil(L, 3) ? 0 : 3;
    luaL_argcheck(L, *name, 1, "process name must not be empty");
    if (proc_find(&engine, name))
        luaL_argerror(L, 1, lua_pushfstring(L, "process name '%s' is already used in this run", name));
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
        const char *code = luaL_checkstring(L, 2);
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n < 0)
            return luaL_error(L, "cannot find the hplua executable: %s", strerror(errno));
        exe[n] = 0;
        argv = lua_newuserdatauv(L, 4 * sizeof *argv, 0);
        argv[0] = exe;
        argv[1] = (char *)"-e";
        argv[2] = (char *)code;
        argv[3] = NULL;
        s.command = lua_pushfstring(L, "hplua -e %s", code);
    } else {
        argv = build_argv(L, 2, &shell);
    }
    s.argv = argv;
    if (opts) {
        s.cwd = opt_string(L, opts, "cwd");
        size_t len = 0;
        int t = lua_getfield(L, opts, "stdin");
        if (t != LUA_TNIL && t != LUA_TSTRING)
            luaL_argerror(L, opts, lua_pushfstring(L, "option 'stdin' must be a string, got %s", luaL_typename(L, -1)));
        s.stdin_data = lua_tolstring(L, -1, &len);
        s.stdin_len = len;
        t = lua_getfield(L, opts, "timeout");
        if (t != LUA_TNIL) {
            if (t != LUA_TNUMBER)
                luaL_argerror(L, opts, lua_pushfstring(L, "option 'timeout' must be a number, got %s", luaL_typename(L, -1)));
            s.timeout = lua_tonumber(L, -1);
            if (!(s.timeout >= 0))
                luaL_argerror(L, opts, "option 'timeout' must not be negative");
        }
        const char *se = opt_string(L, opts, "stderr");
        if (se && strcmp(se, "stdout") == 0)
            s.merge_stderr = true;
        else if (se && strcmp(se, "pipe") != 0)
            luaL_argerror(L, opts, lua_pushfstring(L, "option 'stderr' must be \"pipe\" or \"stdout\", got \"%s\"", se));
        t = lua_getfield(L, opts, "on_line");
        if (t != LUA_TNIL && t != LUA_TFUNCTION)
            luaL_argerror(L, opts, lua_pushfstring(L, "option 'on_line' must be a function, got %s", luaL_typename(L, -1)));
    }
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
        rc = proc_start(&engine, &s, &p, err, sizeof err);
        if (!rc) {
            guard_child_started();
            if (opts && lua_getfield(L, opts, "on_line") == LUA_TFUNCTION) {
                push_state(L, "on_line");
                lua_pushvalue(L, -2);
                lua_setfield(L, -2, name);
                lua_pop(L, 2);
                p->line_next = line_procs;
                line_procs = p;
            }
            char text[512];
            snprintf(text, sizeof text, "Process %s started (pid %d): %.400s", p->name, (int)p->pid, p->command);
            host_message(L, NULL, text);
            push_handle(L, p);
            return 1;
        }
    }
    return luaL_error(L, "cannot start process '%s' (%s): %s", name, shown ? shown : shell ? "/bin/sh" : "hplua", err);
}

static int p_start(lua_State *L) { return start_common(L, 0); }
static int p_lua(lua_State *L) { return start_common(L, 1); }

/* ---- waiting ---- */

/* collect and alive serve both hp.process.X(name) and handle:X(): one turn of
 * the loop without waiting, then the state. */
static int collect_proc(lua_State *L, proc *p)
{
    host_turn(L, 0, -1, 0, NULL);
    if (p->state == PROC_RUNNING)
        return 0;
    push_result(L, p);
    return 1;
}

static int alive_proc(lua_State *L, proc *p)
{
    host_turn(L, 0, -1, 0, NULL);
    lua_pushboolean(L, p->state == PROC_RUNNING);
    return 1;
}

static int p_collect(lua_State *L) { return collect_proc(L, check_name(L, 1)); }
static int p_alive(lua_State *L) { return alive_proc(L, check_name(L, 1)); }

/* Waits for procs[0..n) until all ended or timeout (<0: none). */
static int wait_list(lua_State *L, proc **procs, size_t n, double timeout)
{
    double end = timeout >= 0 ? clock_mono() + timeout : 0;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += procs[i]->state != PROC_RUNNING;
        if (done == n) {
            host_turn(L, 0, -1, 0, NULL); /* deliver the last lines and end messages */
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
        host_turn(L, left, -1, 0, NULL);
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
        proc_terminate(procs[i], grace);
    for (;;) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++)
            live += procs[i]->state == PROC_RUNNING;
        if (!live)
            break;
        host_turn(L, -1, -1, 0, NULL);
    }
    host_turn(L, 0, -1, 0, NULL);
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
    proc **procs = lua_newuserdatauv(L, (engine.n + 1) * sizeof *procs, 0);
    size_t n = 0;
    for (size_t i = 0; i < engine.n; i++)
        if (engine.procs[i]->state == PROC_RUNNING)
            procs[n++] = engine.procs[i];
    terminate_and_wait(L, procs, n, grace);
    lua_newtable(L);
    for (size_t i = 0; i < n; i++) {
        push_result(L, procs[i]);
        lua_setfield(L, -2, procs[i]->name);
    }
    return 1;
}

static int p_names(lua_State *L)
{
    lua_createtable(L, (int)engine.n, 0);
    for (size_t i = 0; i < engine.n; i++) {
        lua_pushstring(L, engine.procs[i]->name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int p_results(lua_State *L)
{
    host_turn(L, 0, -1, 0, NULL);
    lua_newtable(L);
    for (size_t i = 0; i < engine.n; i++)
        if (engine.procs[i]->state != PROC_RUNNING) {
            push_result(L, engine.procs[i]);
            lua_setfield(L, -2, engine.procs[i]->name);
        }
    return 1;
}

/* _cleanup(grace): the end-of-run guarantee: every child and descendant ends. */
static int p_cleanup(lua_State *L)
{
    double grace = opt_grace(L, 1);
    int live = (int)engine.running;
    proc_terminate_everything(&engine, grace);
    announce_ends(L); /* the run is over: no test waits for lines any more */
    lua_pushinteger(L, live);
    return 1;
}

static int p_set_message_handler(lua_State *L)
{
    push_state(L, NULL);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "message");
    return 0;
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

static int h_wait(lua_State *L)
{
    proc *p = check_handle(L);
    int n = wait_list(L, &p, 1, opt_timeout(L, 2));
    if (n == 1) {
        lua_getfield(L, -1, p->name);
        return 1;
    }
    lua_getfield(L, -1, p->name); /* nil, "timeout", {} */
    return 2;
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
                                   {"_cleanup", p_cleanup},
                                   {"_set_message_handler", p_set_message_handler},
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
    luaL_newlib(L, fns);
    return 1;
}
