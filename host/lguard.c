/* Guarded calls of test code: a per-test deadline and Ctrl-C/SIGTERM stop even a
 * busy `while true do end`, through a count hook that checks a monotonic
 * deadline. Once it fires, the hook re-arms on every instruction, so a test's
 * own pcall cannot swallow the error; it only ends when the guarded call returns.
 * The message handler is C, so it never runs Lua code while the hook is firing. */
#include "clock.h"
#include "evloop.h"
#include "heap.h"
#include "host.h"
#include "loop.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { FIRED_NONE, FIRED_TIMEOUT, FIRED_INTERRUPT };

static struct {
    lua_State *main;
    int armed;
    double deadline, timeout;
    unsigned interrupts_at_arm;
    int fired;
} guard;

#define HOOK_COUNT 1000

static int guard_due(void)
{
    if (!guard.armed)
        return FIRED_NONE;
    if (guard.fired)
        return guard.fired;
    if (evloop_interrupts() != guard.interrupts_at_arm)
        return FIRED_INTERRUPT;
    if (guard.deadline && clock_mono() >= guard.deadline)
        return FIRED_TIMEOUT;
    return FIRED_NONE;
}

static void hook(lua_State *L, lua_Debug *ar);

static void set_mode(lua_State *L, int mode);
static volatile sig_atomic_t hook_mode; /* 0 none, 1 every HOOK_COUNT, 2 signal or fired */

static void raise_fired(lua_State *L, int why)
{
    guard.fired = why;
    if (hook_mode != 2)
        set_mode(L, 2);
    if (why == FIRED_TIMEOUT) {
        char msg[64];
        snprintf(msg, sizeof msg, "timeout after %g s", guard.timeout);
        luaL_error(L, "%s", msg);
    }
    int sig = evloop_last_signal();
    luaL_error(L, "interrupted by %s", evloop_signal_name(sig));
}

/* lua_sethook costs O(stack depth) in Lua 5.4, so the hook only calls it when
 * the mode changes (the count hook re-arms by itself). */

static void set_mode(lua_State *L, int mode)
{
    hook_mode = mode;
    if (mode == 0)
        lua_sethook(L, NULL, 0, 0);
    else if (mode == 1)
        lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);
    else
        lua_sethook(L, hook, LUA_MASKCOUNT, 1);
}

/* While test code computes without waiting, the hook still drains the children's
 * pipes now and then (plain C: no callbacks run here; on_line lines wait for the
 * next wait), so a child writing a lot never stalls on a full pipe. */
#define DRAIN_INTERVAL 0.005

static void drain_children(void)
{
    static double last;
    if (!loop_live())
        return;
    double now = clock_mono();
    if (now - last < DRAIN_INTERVAL)
        return;
    last = now;
    loop_drain();
}

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    drain_children();
    int why = guard_due();
    if (why)
        raise_fired(L, why);
    else if (!guard.armed)
        set_mode(L, 0);
    else if (hook_mode != 1)
        set_mode(L, 1);
}

static void on_interrupt(int sig)
{
    (void)sig;
    /* lua_sethook is safe to call from a signal handler (lua.c does the same). */
    if (guard.main && guard.armed) {
        hook_mode = 2;
        lua_sethook(guard.main, hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
}

void guard_install(lua_State *L)
{
    guard.main = L;
    evloop_on_interrupt(on_interrupt);
    loop_set_guard(guard_deadline, guard_check);
}

void guard_check(lua_State *L)
{
    int why = guard_due();
    if (why)
        raise_fired(L, why);
}

int guard_armed(void) { return guard.armed; }

double guard_deadline(void) { return guard.armed ? guard.deadline : 0; }

/* Author frames: Lua code loaded from a file that is not part of the host. */
static int is_author(const lua_Debug *ar)
{
    return ar->source[0] == '@' && strncmp(ar->source, "@hplua:", 7) != 0;
}

/* If msg starts with "<src>:<line>: " for a frame on the stack (or a host file),
 * returns the prefix length and sets *frame_level to that frame (-1 for host). */
static size_t location_prefix(lua_State *L, const char *msg, int *frame_level, int *line)
{
    const char *p = msg;
    while ((p = strchr(p, ':')) != NULL) {
        const char *q = p + 1;
        int n = 0, digits = 0;
        while (*q >= '0' && *q <= '9' && digits < 9) {
            n = n * 10 + (*q++ - '0');
            digits++;
        }
        if (digits && q[0] == ':' && q[1] == ' ') {
            size_t plen = (size_t)(p - msg);
            lua_Debug ar;
            if (plen >= 6 && strncmp(msg, "hplua:", 6) == 0) {
                *frame_level = -1;
                *line = n;
                return (size_t)(q + 2 - msg);
            }
            for (int level = 0; level < 50 && lua_getstack(L, level, &ar); level++) {
                lua_getinfo(L, "S", &ar);
                if (is_author(&ar) && strlen(ar.short_src) == plen && strncmp(ar.short_src, msg, plen) == 0) {
                    *frame_level = level;
                    *line = n;
                    return (size_t)(q + 2 - msg);
                }
            }
            return 0;
        }
        p++;
    }
    return 0;
}

#define TB_HEAD 12
#define TB_TAIL 8

/* The deepest valid stack level, by binary search (as luaL_traceback does). */
static int last_level(lua_State *L)
{
    lua_Debug ar;
    int li = 1, le = 1;
    while (lua_getstack(L, le, &ar)) {
        li = le;
        le *= 2;
    }
    while (li < le) {
        int m = (li + le) / 2;
        if (lua_getstack(L, m, &ar))
            li = m + 1;
        else
            le = m;
    }
    return le - 1;
}

static int tostring_protected(lua_State *L)
{
    luaL_tolstring(L, 1, NULL);
    return 1;
}

/* Error object -> { message, file, line, traceback, kind }. */
int guard_msgh(lua_State *L)
{
    const char *kind = guard.fired == FIRED_TIMEOUT     ? "timeout"
                       : guard.fired == FIRED_INTERRUPT ? "interrupt"
                                                        : "error";
    /* The guarded call is over from here on: stop the hook before running anything. */
    if (guard.fired)
        set_mode(L, 0);
    guard.armed = 0;
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, 1);
        lua_tostring(L, -1);
    } else if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushcfunction(L, tostring_protected);
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
            const char *why = lua_isstring(L, -1) ? lua_tostring(L, -1) : "not a string";
            lua_pushfstring(L, "(error object is a %s value; its __tostring failed: %s)", luaL_typename(L, 1), why);
            lua_remove(L, -2);
        }
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    size_t msg_len;
    const char *msg = lua_tolstring(L, -1, &msg_len);
    int msg_idx = lua_gettop(L);

    int frame_level = -1, line = 0;
    size_t skip = t == LUA_TSTRING ? location_prefix(L, msg, &frame_level, &line) : 0;
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, msg + skip, msg_len - skip);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "object");

    luaL_Buffer tb;
    luaL_buffinit(L, &tb);
    lua_Debug ar;
    int have_loc = 0;
    if (frame_level >= 0 && lua_getstack(L, frame_level, &ar)) {
        lua_getinfo(L, "S", &ar);
        lua_pushstring(L, ar.source + 1);
        lua_setfield(L, -3, "file"); /* -1 is the buffer box */
        lua_pushinteger(L, line);
        lua_setfield(L, -3, "line");
        have_loc = 1;
    }
    /* A deep stack (a runaway recursion) shows its first and last frames only;
     * lua_getstack costs O(level), so the middle is never visited. */
    int last = last_level(L);
    for (int level = 1; level <= last && lua_getstack(L, level, &ar); level++) {
        if (level == TB_HEAD + 1 && last - TB_TAIL > level) {
            char gap[64];
            snprintf(gap, sizeof gap, "...(skipping %d levels)\n", last - TB_TAIL - level + 1);
            luaL_addstring(&tb, gap);
            level = last - TB_TAIL;
            continue;
        }
        lua_getinfo(L, "Sln", &ar);
        if (!is_author(&ar) || ar.currentline <= 0)
            continue;
        if (!have_loc) {
            lua_pushstring(L, ar.source + 1);
            lua_setfield(L, -3, "file");
            lua_pushinteger(L, ar.currentline);
            lua_setfield(L, -3, "line");
            have_loc = 1;
        }
        char entry[512];
        if (*ar.what == 'm')
            snprintf(entry, sizeof entry, "%s:%d: in main chunk\n", ar.short_src, ar.currentline);
        else if (ar.name)
            snprintf(entry, sizeof entry, "%s:%d: in %s '%s'\n", ar.short_src, ar.currentline,
                     *ar.namewhat ? ar.namewhat : "function", ar.name);
        else
            snprintf(entry, sizeof entry, "%s:%d: in function <%s:%d>\n", ar.short_src, ar.currentline,
                     ar.short_src, ar.linedefined);
        luaL_addstring(&tb, entry);
    }
    luaL_pushresult(&tb);
    lua_setfield(L, -2, "traceback");
    lua_remove(L, msg_idx);
    return 1;
}

/* sys.run_guarded(fn, arg, timeout) -> true, result | false, errinfo */
static int run_guarded(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    double timeout = luaL_optnumber(L, 3, 0);
    if (guard.armed)
        return luaL_error(L, "run_guarded: already inside a guarded call");
    lua_settop(L, 3);
    lua_pushcfunction(L, guard_msgh);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    guard.armed = 1;
    guard.fired = FIRED_NONE;
    guard.timeout = timeout;
    guard.deadline = timeout > 0 ? clock_mono() + timeout : 0;
    guard.interrupts_at_arm = evloop_interrupts();
    set_mode(L, 1);
    int rc = lua_pcall(L, 1, 1, 4);
    guard.armed = 0;
    guard.fired = FIRED_NONE;
    set_mode(L, 0);
    if (rc == LUA_ERRMEM)
        lua_gc(L, LUA_GCCOLLECT); /* what the test built is garbage now */
    lua_pushboolean(L, rc == LUA_OK);
    lua_insert(L, -2);
    if (rc != LUA_OK && !lua_istable(L, -1)) {
        /* memory error or error in the handler: still give a table */
        const char *m = lua_tostring(L, -1);
        char buf[128];
        if (rc == LUA_ERRMEM && heap_limit()) {
            snprintf(buf, sizeof buf, "out of memory: the Lua heap would exceed --max-memory %g MB",
                     (double)heap_limit() / (1024.0 * 1024.0));
            m = buf;
        }
        lua_createtable(L, 0, 2);
        lua_pushstring(L, m ? m : "error in error handling");
        lua_setfield(L, -2, "message");
        lua_pushstring(L, "error");
        lua_setfield(L, -2, "kind");
        lua_remove(L, -2);
    }
    return 2;
}

static int interrupted(lua_State *L)
{
    unsigned n = evloop_interrupts();
    if (!n)
        return 0;
    lua_pushinteger(L, n);
    lua_pushstring(L, evloop_signal_name(evloop_last_signal()));
    lua_pushinteger(L, evloop_last_signal());
    return 3;
}

/* sys.caller() -> file, line of the nearest author frame (the test file calling an
 * API function), or "?", 0. C, because hp.test calls it for every declaration. */
static int caller(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; level < 64 && lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (is_author(&ar)) {
            lua_pushstring(L, ar.source + 1);
            lua_pushinteger(L, ar.currentline);
            return 2;
        }
    }
    lua_pushliteral(L, "?");
    lua_pushinteger(L, 0);
    return 2;
}

void guard_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"run_guarded", run_guarded}, {"interrupted", interrupted}, {"caller", caller}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
