/* A native module that does what a vendor's driver might, plain Lua C API, no
 * hplua.h:
 * - daemon(argv) double-forks argv in a session of its own, so the process is
 *   re-parented to hplua (its subreaper) with no handle; the end-of-run sweep must
 *   still find it.
 * - nap(seconds) -> seconds slept, errno: a settling delay with usleep, which any
 *   signal cuts short (EINTR); hplua must not send one into it. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_nap(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    double t0 = now();
    int err = usleep((useconds_t)(s * 1e6)) == 0 ? 0 : errno;
    lua_pushnumber(L, now() - t0);
    lua_pushinteger(L, err);
    return 2;
}

static int l_daemon(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    luaL_argcheck(L, n > 0 && n < 32, 1, "argv of 1 to 31 words expected");
    const char *argv[32];
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        argv[i - 1] = luaL_checkstring(L, -1);
        lua_pop(L, 1); /* still anchored in the table */
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() == 0) {
            execvp(argv[0], (char *const *)argv);
            _exit(127);
        }
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    lua_pushboolean(L, pid > 0);
    return 1;
}

int luaopen_forkmod(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_daemon);
    lua_setfield(L, -2, "daemon");
    lua_pushcfunction(L, l_nap);
    lua_setfield(L, -2, "nap");
    return 1;
}
