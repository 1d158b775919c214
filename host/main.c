/* hplua: main only creates the Lua state and runs everything else protected,
 * in pmain, as lua.c does. The CLI itself is Lua (lua/cli.lua). */
#include "evloop.h"
#include "fdio.h"
#include "heap.h"
#include "host.h"
#include "loop.h"
#include "monitor.h"
#include "orphans.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_INTERNAL 3
#define EXIT_INTERRUPTED 2 /* as the runner's EXIT.interrupted */

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    luaL_openlibs(L);
    modules_install(L);
    guard_install(L);
    int err = proc_global_init();
    if (err)
        return luaL_error(L, "cannot set up signal handling: %s", strerror(err));
    lua_getglobal(L, "require");
    lua_pushliteral(L, "hplua.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_call(L, 1, 2); /* -> exit status, signal to re-raise (script mode) */
    return 2;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- After the run: lua_close runs the finalizers left (test code's __gc among them).
 * None of them can change the exit status (os.exit raises), and none can hold the
 * process: SIGINT or SIGTERM end it (exit 2), and so does a deadline of CLOSE_S seconds
 * (with the run's own status: every output has given the verdict by then). */
#define CLOSE_S 5
static volatile sig_atomic_t closing = -1; /* the run's status, once Lua has returned it */
static volatile sig_atomic_t returned;     /* main's own return: a plain exit */

static void close_deadline(int sig)
{
    (void)sig;
    static const char msg[] = "hplua: a finalizer did not end within 5 s of the run's end; exiting\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(closing);
}

static void close_interrupted(int sig)
{
    (void)sig;
    _exit(EXIT_INTERRUPTED);
}

static int exit_after_run(lua_State *L)
{
    return luaL_error(L, "os.exit after the run has ended: the exit status is the run's");
}

static void close_guarded(lua_State *L)
{
    if (lua_getglobal(L, "os") == LUA_TTABLE && lua_getfield(L, -1, "exit") != LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushcfunction(L, exit_after_run); /* the key exists: setting it allocates nothing */
        lua_setfield(L, -2, "exit");
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    struct sigaction sa, old_int, old_term, old_alrm;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = close_interrupted;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = close_deadline;
    sigaction(SIGALRM, &sa, &old_alrm);
    sigset_t set, old_mask;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &set, &old_mask);
    alarm(CLOSE_S);
    heap_exiting(); /* the finalizers run; the memory goes back with the process */
    lua_close(L);
    alarm(0);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGALRM, &old_alrm, NULL);
}

/* ---- A process ended by native code: test code that reaches libc (package.loadlib)
 * can call exit() or end the main thread (pthread_exit), and the process would exit 0
 * with no report. Both run the atexit handlers. During a run (os.exit raises then) the
 * status becomes an internal error's; once the run's verdict is out (its outputs
 * closing, lua_close's finalizers), the run's own status stands. _exit and signals do
 * not run them: a parent (the station) sees those in the wait status. */

static void exit_check(void)
{
    if (returned)
        return;
    /* the run's status once Lua returned it; before that, once its verdict was out
     * (its outputs closing) */
    int status = closing >= 0 ? closing : guard_exit_verdict();
    if (status >= 0) {
        fflush(NULL);
        _exit(status);
    }
    if (guard_exit_watched()) {
        static const char msg[] = "hplua: error: test code ended the process (exit or pthread_exit from native "
                                  "code) before the run's end: no verdict\n";
        ssize_t n = write(2, msg, sizeof msg - 1);
        (void)n;
        _exit(EXIT_INTERNAL);
    }
}

int main(int argc, char **argv)
{
    fd_note_inherited(); /* before anything is opened: which descriptors the caller gave */
    evloop_init(); /* first: a SIGTERM during start-up must end the run like any other */
    atexit(exit_check);
    /* The watchdog (orphans.c) is forked now, while this process is small: forked later,
     * from a Lua heap of megabytes, it would share every page copy-on-write, and each
     * later write to one would cost a fault and a copy for as long as the run lasts.
     * Not for `hplua history` (a run's recorder among them), which starts no child: a
     * first child would start it then (proc_start). */
    if (argc < 2 || strcmp(argv[1], "history") != 0)
        orphans_watchdog_start();
    static const heap_policy policy = {guard_armed}; /* --max-memory holds in test code only */
    lua_State *L = lua_newstate(heap_alloc, (void *)&policy);
    if (!L) {
        fprintf(stderr, "hplua: cannot create the Lua state: out of memory\n");
        return EXIT_INTERNAL;
    }
    lua_pushcfunction(L, traceback);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = EXIT_INTERNAL, resignal = 0;
    if (lua_pcall(L, 2, 2, 1) == LUA_OK) {
        status = (int)luaL_optinteger(L, -2, EXIT_INTERNAL);
        resignal = (int)luaL_optinteger(L, -1, 0);
    } else {
        fprintf(stderr, "hplua: internal error: %s\n", lua_tostring(L, -1));
    }
    closing = status;
    monitor_stop(); /* no tick, no last resort from here on */
    fflush(stdout);
    close_guarded(L);
    /* Whatever way the run ended, no child outlives the host. */
    loop_shutdown();
    if (resignal) {
        signal(resignal, SIG_DFL);
        raise(resignal);
    }
    returned = 1;
    return status;
}
