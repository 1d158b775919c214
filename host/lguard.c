/* Guarded calls of test code: a per-test deadline and Ctrl-C/SIGTERM stop even a
 * busy `while true do end`, at no cost while nothing is due and no child is read.
 *
 * No hook runs while test code computes, but a sparse one while a child whose output
 * the engine reads is live (Lua 5.4 then checks every instruction: about 2x): every DRAIN_COUNT instructions it drains their pipes (at most every
 * DRAIN_INTERVAL), so a child writing a lot never stalls while the test computes,
 * and no signal is needed for it (a signal would cut short a driver's usleep or
 * poll in C). The monitor's timer (monitor.c) ticks only when something is due (a
 * deadline passed, an interrupt pending); the tick arms a count-1 hook on the Lua
 * thread running now (coroutine.resume/wrap/close are wrapped to track it). The hook
 * raises the timeout or interrupt error; once fired it stays on every instruction,
 * so a test's pcall cannot swallow it. The guard stays armed
 * until the guarded lua_pcall returns: the message handler, __close and the error
 * object's __tostring run under it, and an overrun is a failure however the call
 * ended. The message handler only records (keyed by the error object) and returns
 * the object unchanged, so `load` and the test's own handlers keep Lua's semantics.
 * debug.sethook/gethook are virtualised per thread: the one real hook serves the
 * test's hook and the guard. Code no hook reaches (a C call, a finalizer) is ended
 * by the monitor's last resort, which calls the rescue function registered with
 * sys.set_rescue in a forked copy of the process. */
#include "clock.h"
#include "evloop.h"
#include "heap.h"
#include "host.h"
#include "loop.h"
#include "monitor.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { FIRED_NONE, FIRED_TIMEOUT, FIRED_INTERRUPT };

#define TICK_SIGNAL SIGURG
/* Test code armed after SIGINT/SIGTERM (after_each, after_all, teardowns) gets
 * this long from the first interrupt, so the run still ends within 5 s. */
#define POST_INTERRUPT_BUDGET 2.0

static struct {
    lua_State *main;
    lua_State *volatile running; /* the Lua thread executing now (read by the tick handler) */
    volatile sig_atomic_t armed;
    int suspend;   /* > 0: the heap cap is off (the guard's own bookkeeping) */
    int fired;
    int user_hooks; /* debug.sethook has set a hook at some time */
    double timeout, own_deadline, budget_end, deadline;
    unsigned interrupts_at_arm;
} guard;

static volatile sig_atomic_t tick_pending;
/* > 0: the host records what test code did (an event and the record it goes in,
 * sys.atomic): a stop that comes meanwhile waits for the step to end, so every
 * output has it or none does. */
static int atomic_depth;
static volatile long long first_interrupt_us; /* written by the signal handler only */

/* Registry keys. */
static char HOOKS_KEY;  /* { [thread] = uhook userdata (user value: function) }, weak keys */
static char LAST_KEY;   /* the message handler's record of the last error */
static char RESCUE_KEY; /* the runner's rescue function */

typedef struct uhook {
    int mask, count, left;
} uhook;

static void hook(lua_State *L, lua_Debug *ar);
static void arm_running(void);
static void guard_rescue(int reason);

/* ---- when is a stop due ---- */

static int guard_due(void)
{
    if (!guard.armed)
        return FIRED_NONE;
    if (guard.fired)
        return guard.fired;
    if (evloop_interrupts() != guard.interrupts_at_arm)
        return FIRED_INTERRUPT;
    if (guard.deadline) {
        double now = clock_mono();
        if (guard.budget_end && now >= guard.budget_end)
            return FIRED_INTERRUPT;
        if (guard.own_deadline && now >= guard.own_deadline)
            return FIRED_TIMEOUT;
    }
    return FIRED_NONE;
}

static const char *fired_message(int why, char *buf, size_t len)
{
    if (why == FIRED_TIMEOUT)
        snprintf(buf, len, "timeout after %g s", guard.timeout);
    else
        snprintf(buf, len, "interrupted by %s", evloop_signal_name(evloop_last_signal()));
    return buf;
}

/* ---- the real hook of each thread ---- */

/* Pushes the test's hook record of thread co (a uhook userdata, or nil). */
static uhook *push_user_hook(lua_State *L, lua_State *co)
{
    if (!guard.user_hooks || lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOKS_KEY) != LUA_TTABLE) {
        if (guard.user_hooks)
            lua_pop(L, 1);
        lua_pushnil(L);
        return NULL;
    }
    if (co == L) {
        lua_pushthread(L);
    } else {
        if (!lua_checkstack(co, 1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return NULL;
        }
        lua_pushthread(co);
        lua_xmove(co, L, 1);
    }
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return lua_touserdata(L, -1);
}

/* While a child whose output is read is live, the hook drains the pipes every
 * DRAIN_COUNT instructions (or at the test's own count hook, if more often). */
#define DRAIN_COUNT 100000

static int draining(void) { return guard.armed && loop_piped(); }

/* Thread L's hook as the test set it (u), plus a count-1 hook when tick is set, or
 * the sparse drain count while children are live. */
static void set_real(lua_State *L, const uhook *u, int tick)
{
    int mask = u ? u->mask : 0;
    if (tick)
        lua_sethook(L, hook, mask | LUA_MASKCOUNT, 1);
    else if (draining())
        lua_sethook(L, hook, mask | LUA_MASKCOUNT,
                    (mask & LUA_MASKCOUNT) && u->count < DRAIN_COUNT ? u->count : DRAIN_COUNT);
    else if (mask)
        lua_sethook(L, hook, mask, u->count);
    else
        lua_sethook(L, NULL, 0, 0);
}

/* Puts the drain count on thread L unless a count hook of ours at least as frequent
 * is on it already (a tick, the test's own count, the drain), or a C module's hook is. */
static void ensure_drain(lua_State *L)
{
    lua_Hook h = lua_gethook(L);
    if (!draining() || (h && h != hook) ||
        (h == hook && (lua_gethookmask(L) & LUA_MASKCOUNT) && lua_gethookcount(L) <= DRAIN_COUNT))
        return;
    lua_sethook(L, hook, lua_gethookmask(L) | LUA_MASKCOUNT, DRAIN_COUNT);
}

/* Raises the timeout or interrupt error, located at stack level `level` (0 in the
 * hook: the interrupted function; 1 in a C function: its caller). */
static void raise_fired(lua_State *L, int why, int level)
{
    char msg[64];
    guard.fired = why;
    if (lua_gethookcount(L) != 1 || !(lua_gethookmask(L) & LUA_MASKCOUNT) || lua_gethook(L) != hook)
        lua_sethook(L, hook, lua_gethookmask(L) | LUA_MASKCOUNT, 1);
    luaL_where(L, level);
    lua_pushstring(L, fired_message(why, msg, sizeof msg));
    lua_concat(L, 2);
    lua_error(L);
}

/* While test code computes, the ticks drain the children's pipes now and then
 * (plain C: no callbacks run here; on_line lines wait for the next wait), so a
 * child writing a lot never stalls on a full pipe. */
#define DRAIN_INTERVAL 0.004

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

/* Calls the test's hook function (user value of the uhook at ud) as ldblib's does. */
static void call_user(lua_State *L, lua_Debug *ar, int ud)
{
    static const char *const names[] = {"call", "return", "line", "count", "tail call"};
    lua_getiuservalue(L, ud, 1);
    lua_pushstring(L, names[ar->event]);
    if (ar->currentline >= 0)
        lua_pushinteger(L, ar->currentline);
    else
        lua_pushnil(L);
    lua_call(L, 2, 0);
}

static void hook(lua_State *L, lua_Debug *ar)
{
    int top = lua_gettop(L);
    uhook *u = push_user_hook(L, L);
    int ud = lua_gettop(L);
    if (ar->event == LUA_HOOKCOUNT) {
        if (guard.armed && (tick_pending || guard.fired)) {
            tick_pending = 0;
            if (!atomic_depth) { /* else the stop comes when the host's step ends (sys_atomic) */
                drain_children();
                int why = guard_due();
                if (why) {
                    lua_settop(L, top);
                    raise_fired(L, why, 0);
                }
            }
        } else if (guard.armed) {
            drain_children();
        }
        int base = lua_gethookcount(L);
        int user_count = u && (u->mask & LUA_MASKCOUNT);
        if (base == 1 && !(user_count && u->count == 1) && !guard.fired)
            set_real(L, u, 0); /* the tick is served */
        else if (base == DRAIN_COUNT && !(user_count && u->count == DRAIN_COUNT) && !draining())
            set_real(L, u, 0); /* the children have ended */
        if (user_count) {
            if (base == u->count) {
                call_user(L, ar, ud);
            } else if ((u->left -= base) <= 0) { /* counted here while a tick or the drain runs */
                u->left = u->count;
                call_user(L, ar, ud);
            }
        }
    } else {
        if (guard.armed && guard.fired && !atomic_depth) {
            lua_settop(L, top);
            raise_fired(L, guard.fired, 0);
        }
        int bit = ar->event == LUA_HOOKTAILCALL ? LUA_MASKCALL : (1 << ar->event);
        if (u && (u->mask & bit))
            call_user(L, ar, ud);
    }
    lua_settop(L, top);
}

/* From signal handlers (the monitor's tick, SIGINT/SIGTERM): lua_sethook is safe
 * there, as in lua.c. */
static void arm_running(void)
{
    lua_State *L = guard.running;
    if (L && guard.armed) {
        tick_pending = 1;
        lua_sethook(L, hook, lua_gethookmask(L) | LUA_MASKCOUNT, 1);
    }
}

static void on_interrupt(int sig)
{
    (void)sig;
    if (!first_interrupt_us) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        first_interrupt_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    arm_running();
    monitor_kick();
}

void guard_check(lua_State *L)
{
    if (atomic_depth)
        return; /* the stop comes when the host's step ends (sys_atomic) */
    int why = guard_due();
    if (why)
        raise_fired(L, why, 1);
}

static void guard_child_started(void)
{
    if (guard.running)
        ensure_drain(guard.running); /* its pipes are drained while test code computes */
}

int guard_armed(void) { return guard.armed && !guard.suspend; }

double guard_deadline(void) { return guard.armed ? guard.deadline : 0; }

/* ---- coroutines: track the running thread ---- */

static void fired_check(lua_State *L)
{
    if (guard.armed && guard.fired)
        raise_fired(L, guard.fired, 1);
}

/* Resumes co with narg values from L; returns the number of results moved to L,
 * or -1 with the error object on L (as lcorolib does). */
static int auxresume(lua_State *L, lua_State *co, int narg)
{
    fired_check(L);
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    lua_State *prev = guard.running;
    guard.running = co;
    ensure_drain(co);
    int nres, status = lua_resume(co, L, narg, &nres);
    guard.running = prev;
    ensure_drain(L); /* a child started in the coroutine: the resumer computes on */
    int r;
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            r = -1;
        } else {
            lua_xmove(co, L, nres);
            r = nres;
        }
    } else {
        lua_xmove(co, L, 1);
        r = -1;
    }
    fired_check(L); /* a timeout inside the coroutine is not the resumer's to catch */
    return r;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "thread");
    int r = auxresume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int close_thread(lua_State *L, lua_State *co)
{
    lua_State *prev = guard.running;
    guard.running = co; /* its __close handlers run on co */
    int status = lua_resetthread(co);
    guard.running = prev;
    ensure_drain(L); /* a child started by a __close handler */
    fired_check(L);
    return status;
}

static int auxwrap(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = auxresume(L, co, lua_gettop(L));
    if (r < 0) {
        int status = lua_status(co);
        if (status != LUA_OK && status != LUA_YIELD) { /* an error in the coroutine: close it */
            status = close_thread(L, co);
            lua_xmove(co, L, 1);
        }
        if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, auxwrap, 1);
    return 1;
}

static int co_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "thread");
    const char *what = NULL;
    lua_Debug ar;
    if (co == L)
        what = "running";
    else if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
        what = "normal";
    if (what)
        return luaL_error(L, "cannot close a %s coroutine", what);
    if (close_thread(L, co) == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

/* ---- debug.sethook / debug.gethook, per thread, beside the guard ---- */

static lua_State *opt_thread(lua_State *L, int *arg)
{
    if (lua_isthread(L, 1)) {
        *arg = 1;
        return lua_tothread(L, 1);
    }
    *arg = 0;
    return L;
}

static int db_sethook(lua_State *L)
{
    int arg, mask = 0, count = 0;
    lua_State *co = opt_thread(L, &arg);
    int set = !lua_isnoneornil(L, arg + 1);
    if (set) {
        const char *smask = luaL_checkstring(L, arg + 2);
        luaL_checktype(L, arg + 1, LUA_TFUNCTION);
        count = (int)luaL_optinteger(L, arg + 3, 0);
        if (strchr(smask, 'c'))
            mask |= LUA_MASKCALL;
        if (strchr(smask, 'r'))
            mask |= LUA_MASKRET;
        if (strchr(smask, 'l'))
            mask |= LUA_MASKLINE;
        if (count > 0)
            mask |= LUA_MASKCOUNT;
    }
    lua_settop(L, arg + 1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOKS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_pushvalue(L, -1);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOKS_KEY);
    }
    if (co != L && !lua_checkstack(co, 1))
        return luaL_error(L, "stack overflow");
    if (co == L) {
        lua_pushthread(L);
    } else {
        lua_pushthread(co);
        lua_xmove(co, L, 1);
    }
    uhook *u = NULL;
    if (set) {
        u = lua_newuserdatauv(L, sizeof *u, 1);
        u->mask = mask;
        u->count = count;
        u->left = count;
        lua_pushvalue(L, arg + 1);
        lua_setiuservalue(L, -2, 1);
        guard.user_hooks = 1;
    } else {
        lua_pushnil(L);
    }
    lua_rawset(L, -3);
    if (guard.armed && guard.fired)
        set_real(co, u, 1);
    else
        set_real(co, u, 0);
    return 0;
}

static int db_gethook(lua_State *L)
{
    int arg;
    lua_State *co = opt_thread(L, &arg);
    lua_Hook h = lua_gethook(co);
    char smask[4];
    int n = 0, mask, count;
    if (h != NULL && h != hook) { /* set by a C module */
        lua_pushliteral(L, "external hook");
        mask = lua_gethookmask(co);
        count = lua_gethookcount(co);
    } else {
        uhook *u = push_user_hook(L, co);
        if (!u || !u->mask) {
            luaL_pushfail(L);
            return 1;
        }
        lua_getiuservalue(L, -1, 1);
        mask = u->mask;
        count = u->count;
    }
    if (mask & LUA_MASKCALL)
        smask[n++] = 'c';
    if (mask & LUA_MASKRET)
        smask[n++] = 'r';
    if (mask & LUA_MASKLINE)
        smask[n++] = 'l';
    lua_pushlstring(L, smask, (size_t)n);
    lua_pushinteger(L, count);
    return 3;
}

static void replace(lua_State *L, const char *lib, const char *name, lua_CFunction fn)
{
    if (lua_getglobal(L, lib) == LUA_TTABLE) {
        lua_pushcfunction(L, fn);
        lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
}

/* ---- the message handler and run_guarded ---- */

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

/* The message handler of guarded calls: records { object, message, file, line,
 * traceback, kind } for the error object at 1 under LAST_KEY and returns the
 * object unchanged. It runs no metamethod (an error object's __tostring is
 * called later, by run_guarded, under the guard) and never disarms the guard. */
static int msgh(lua_State *L)
{
    guard.suspend++;
    lua_settop(L, 1);
    int t = lua_type(L, 1);
    lua_createtable(L, 0, 7);
    int rec = lua_gettop(L);
    lua_pushvalue(L, 1);
    lua_setfield(L, rec, "object");
    lua_pushstring(L, guard.fired == FIRED_TIMEOUT ? "timeout" : guard.fired == FIRED_INTERRUPT ? "interrupt" : "error");
    lua_setfield(L, rec, "kind");
    int frame_level = -1, line = 0;
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        size_t len;
        lua_pushvalue(L, 1);
        const char *msg = lua_tolstring(L, -1, &len);
        size_t skip = t == LUA_TSTRING ? location_prefix(L, msg, &frame_level, &line) : 0;
        lua_pushlstring(L, msg + skip, len - skip);
        lua_setfield(L, rec, "message");
        lua_pop(L, 1);
    } else if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1); /* the message is made later, under the guard */
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        lua_setfield(L, rec, "message");
    }

    luaL_Buffer tb;
    luaL_buffinit(L, &tb);
    lua_Debug ar;
    int have_loc = 0;
    if (frame_level >= 0 && lua_getstack(L, frame_level, &ar)) {
        lua_getinfo(L, "S", &ar);
        lua_pushstring(L, ar.source + 1);
        lua_setfield(L, rec, "file");
        lua_pushinteger(L, line);
        lua_setfield(L, rec, "line");
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
            lua_setfield(L, rec, "file");
            lua_pushinteger(L, ar.currentline);
            lua_setfield(L, rec, "line");
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
    lua_setfield(L, rec, "traceback");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &LAST_KEY);
    guard.suspend--;
    return 1; /* the error object, unchanged */
}

static int tostring_protected(lua_State *L)
{
    luaL_tolstring(L, 1, NULL);
    return 1;
}

static void start_monitor(lua_State *L)
{
    static int tried;
    if (tried)
        return;
    tried = 1;
    monitor_config c = {TICK_SIGNAL, arm_running, guard_rescue};
    int err = monitor_init(&c);
    if (err)
        luaL_error(L, "cannot set up the guard's timer: %s", strerror(err));
}

static void arm(lua_State *L, double timeout)
{
    double now = clock_mono();
    guard.fired = FIRED_NONE;
    guard.timeout = timeout;
    guard.interrupts_at_arm = evloop_interrupts();
    guard.own_deadline = timeout > 0 ? now + timeout : 0;
    guard.budget_end = first_interrupt_us ? (double)first_interrupt_us / 1e6 + POST_INTERRUPT_BUDGET : 0;
    guard.deadline = guard.own_deadline;
    if (guard.budget_end && (!guard.deadline || guard.budget_end < guard.deadline))
        guard.deadline = guard.budget_end;
    guard.suspend = 0;
    guard.running = L;
    tick_pending = 0;
    guard.armed = 1;
    ensure_drain(L); /* children of earlier tests may still run */
    monitor_arm(guard.deadline, guard.interrupts_at_arm);
}

static void disarm(lua_State *L)
{
    guard.armed = 0;
    monitor_disarm();
    guard.fired = FIRED_NONE;
    tick_pending = 0;
    guard.suspend = 0;
    guard.running = L;
    push_user_hook(L, L);
    set_real(L, lua_touserdata(L, -1), 0);
    lua_pop(L, 1);
}

/* sys.run_guarded(fn, arg, timeout) -> true, result | false, errinfo
 * errinfo = { message, kind = "error"|"timeout"|"interrupt", object, file, line, traceback } */
static int run_guarded(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    double timeout = luaL_optnumber(L, 3, 0);
    if (guard.armed)
        return luaL_error(L, "run_guarded: already inside a guarded call");
    start_monitor(L);
    lua_settop(L, 3);
    lua_pushcfunction(L, msgh);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &LAST_KEY);
    arm(L, timeout);
    int rc = lua_pcall(L, 1, 1, 4); /* -> 5: result or error object */
    int why = guard_due(); /* an overrun is a failure, however the call ended */
    if (rc == LUA_OK && !why) {
        disarm(L);
        lua_pushboolean(L, 1);
        lua_insert(L, -2);
        return 2;
    }
    guard.suspend++;
    /* the handler's record, when it is about this very error object */
    if (rc != LUA_OK && lua_rawgetp(L, LUA_REGISTRYINDEX, &LAST_KEY) == LUA_TTABLE &&
        (lua_getfield(L, -1, "object"), lua_rawequal(L, -1, 5))) {
        lua_pop(L, 1);
    } else {
        lua_settop(L, 5);
        lua_createtable(L, 0, 3);
        lua_pushvalue(L, 5);
        lua_setfield(L, -2, "object");
        lua_pushstring(L, "error");
        lua_setfield(L, -2, "kind");
        int t = lua_type(L, 5);
        if (rc == LUA_OK) {
            lua_pushnil(L);
            lua_setfield(L, -2, "object");
        } else if (rc == LUA_ERRMEM && heap_limit()) {
            char buf[128];
            snprintf(buf, sizeof buf, "out of memory: the Lua heap would exceed --max-memory %g MB",
                     (double)heap_limit() / (1024.0 * 1024.0));
            lua_pushstring(L, buf);
            lua_setfield(L, -2, "message");
        } else if (t == LUA_TSTRING || t == LUA_TNUMBER) {
            lua_pushvalue(L, 5);
            lua_tostring(L, -1);
            lua_setfield(L, -2, "message");
        } else if (luaL_getmetafield(L, 5, "__tostring") == LUA_TNIL) {
            lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 5));
            lua_setfield(L, -2, "message");
        } else {
            lua_pop(L, 1);
        }
    }
    int info = lua_gettop(L);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &LAST_KEY);
    if (!why && lua_getfield(L, info, "message") == LUA_TNIL) {
        /* An error object with __tostring: its message, made under the guard (it may loop). */
        guard.suspend--;
        lua_pushcfunction(L, tostring_protected);
        lua_pushvalue(L, 5);
        int ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING;
        guard.suspend++;
        why = guard_due();
        if (!ok) {
            const char *err = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "not a string";
            lua_pushfstring(L, "(error object is a %s value; its __tostring failed: %s)", luaL_typename(L, 5), err);
            lua_remove(L, -2);
        }
        lua_setfield(L, info, "message");
    }
    lua_settop(L, info);
    if (why) {
        /* Past the deadline or interrupted: that is the verdict, whatever the code
         * caught or returned. The location stays when the guard's own error ended it. */
        char msg[64];
        fired_message(why, msg, sizeof msg);
        lua_getfield(L, info, "message");
        int own = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), msg) == 0;
        lua_pop(L, 1);
        if (!own) {
            lua_pushnil(L);
            lua_setfield(L, info, "file");
            lua_pushnil(L);
            lua_setfield(L, info, "line");
            lua_pushnil(L);
            lua_setfield(L, info, "traceback");
        }
        lua_pushstring(L, msg);
        lua_setfield(L, info, "message");
        lua_pushstring(L, why == FIRED_TIMEOUT ? "timeout" : "interrupt");
        lua_setfield(L, info, "kind");
    }
    disarm(L);
    if (rc == LUA_ERRMEM)
        lua_gc(L, LUA_GCCOLLECT); /* what the test built is garbage now */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* ---- the last resort (monitor.c), in the forked child ---- */

static int find_author(lua_State *L, lua_Debug *ar)
{
    for (int level = 0; level < 200 && lua_getstack(L, level, ar); level++) {
        lua_getinfo(L, "Sl", ar);
        if (is_author(ar) && ar->currentline > 0)
            return 1;
    }
    return 0;
}

/* Called by the monitor in a forked copy of the process (only the monitor's thread
 * exists; the main thread is frozen where it was stuck). Hooks off, no heap cap:
 * runs the runner's rescue function, which records the stuck test and writes the
 * reports. */
static void guard_rescue(int reason)
{
    lua_State *L = guard.running ? guard.running : guard.main;
    int was_armed = guard.armed, fired = guard.fired;
    guard.armed = 0;
    guard.suspend = 0;
    lua_sethook(L, NULL, 0, 0);
    lua_sethook(guard.main, NULL, 0, 0);
    lua_Debug ar;
    char msg[512], head[64];
    int found = was_armed && (find_author(L, &ar) || (L != guard.main && find_author(guard.main, &ar)));
    if (reason == MONITOR_TIMEOUT || fired == FIRED_TIMEOUT)
        fired_message(FIRED_TIMEOUT, head, sizeof head);
    else
        fired_message(FIRED_INTERRUPT, head, sizeof head);
    if (was_armed)
        snprintf(msg, sizeof msg, "%s; the test was stuck where no hook reaches (a C call or a finalizer), so the run was ended",
                 head);
    else
        snprintf(msg, sizeof msg, "%s; the run did not end within %g s, so it was ended", head, MONITOR_HARD_CAP);
    if (!lua_checkstack(L, 8))
        return;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &RESCUE_KEY) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        fflush(NULL);
        return;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, reason == MONITOR_TIMEOUT ? "timeout" : "interrupt");
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, was_armed);
    lua_setfield(L, -2, "in_test_code");
    if (found) {
        lua_pushstring(L, ar.source + 1);
        lua_setfield(L, -2, "file");
        lua_pushinteger(L, ar.currentline);
        lua_setfield(L, -2, "line");
    }
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        const char *err = lua_tostring(L, -1);
        fprintf(stderr, "hplua: writing the reports failed: %s\n", err ? err : "(no message)");
    }
    fflush(NULL);
}

/* sys.set_rescue(fn | nil): fn(info) runs when the run must be ended from outside
 * (info = { reason = "timeout"|"interrupt", message, file, line, in_test_code }). */
static int set_rescue(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESCUE_KEY);
    return 0;
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

void guard_install(lua_State *L)
{
    /* the loop bounds its waits by our deadline, checks us after each, and tells us
     * when a child starts */
    static const loop_guard hooks = {guard_deadline, guard_check, guard_child_started};
    loop_set_guard(&hooks);
    guard.main = guard.running = L;
    evloop_on_interrupt(on_interrupt);
    replace(L, "coroutine", "resume", co_resume);
    replace(L, "coroutine", "wrap", co_wrap);
    replace(L, "coroutine", "close", co_close);
    replace(L, "debug", "sethook", db_sethook);
    replace(L, "debug", "gethook", db_gethook);
}

/* sys.atomic(fn, ...) -> fn's results: fn (host code only: a step of the host's own
 * bookkeeping, short and bounded) runs to its end before a timeout or an interrupt
 * stops the test, which then stops right after it. Errors pass through. */
static int sys_atomic(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Debug ar, caller;
    lua_pushvalue(L, 1);
    lua_getinfo(L, ">S", &ar);
    /* the step and its caller are the host's own code (not a host function handed
     * a test's value by test code) */
    if (strncmp(ar.source, "@hplua:", 7) != 0 || !lua_getstack(L, 1, &caller) || !lua_getinfo(L, "S", &caller) ||
        strncmp(caller.source, "@hplua:", 7) != 0)
        return luaL_error(L, "hplua.sys.atomic is private to the host");
    int n = lua_gettop(L);
    atomic_depth++;
    int status = lua_pcall(L, n - 1, LUA_MULTRET, 0);
    atomic_depth--;
    if (status != LUA_OK)
        return lua_error(L);
    guard_check(L); /* the stop that waited for the step (the outermost one) */
    return lua_gettop(L);
}

/* ---- exit() while a run is on: os.exit raises then (lua/runner.lua), so an exit() is
 * native code that test code reached (package.loadlib), or the main thread's end
 * (pthread_exit), which runs the atexit handlers too: main.c's handler asks. */
static int exit_watched;
static int exit_verdict = -1;

int guard_exit_watched(void) { return exit_watched; }
int guard_exit_verdict(void) { return exit_verdict; }

/* sys.watch_exit(on | status): the runner's own switch, from the run's start to the
 * process's end. true: no verdict yet; an integer: the verdict is out (its exit
 * status, which an exit() then keeps); false: off. */
static int watch_exit(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Integer status = luaL_checkinteger(L, 1);
        luaL_argcheck(L, status >= 0 && status <= 255, 1, "must be an exit status (0 to 255)");
        exit_watched = 1;
        exit_verdict = (int)status;
    } else {
        exit_watched = lua_toboolean(L, 1);
        exit_verdict = -1;
    }
    return 0;
}

void guard_register(lua_State *L)
{
    static const luaL_Reg fns[] = {{"run_guarded", run_guarded},
                                   {"watch_exit", watch_exit},
                                   {"atomic", sys_atomic},
                                   {"interrupted", interrupted},
                                   {"caller", caller},
                                   {"set_rescue", set_rescue},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
