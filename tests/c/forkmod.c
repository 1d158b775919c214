/* A native module that starts a process behind the engine's back (as a vendor's
 * driver might): daemon(argv) double-forks argv in a session of its own, so the
 * process is re-parented to hplua (its subreaper) with no handle. The end-of-run
 * sweep must still find it. Plain Lua C API, no hplua.h. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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
    return 1;
}
