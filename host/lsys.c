/* hplua.sys: the few POSIX calls the runner needs (directories, file types,
 * clocks, terminals) plus the guard's entry points. */
#include "clock.h"
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int push_errno(lua_State *L, const char *what, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    return 2;
}

/* listdir(path) -> { names } (unsorted, without . and ..) | nil, err */
static int sys_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d)
        return push_errno(L, path, errno);
    lua_newtable(L);
    struct dirent *de;
    lua_Integer i = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        lua_pushstring(L, de->d_name);
        lua_rawseti(L, -2, ++i);
    }
    closedir(d);
    return 1;
}

/* kind(path) -> "file" | "dir" | "other" | nil, reason (a dangling link says so) */
static int sys_kind(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        if (err == ENOENT && lstat(path, &st) == 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s: dangling symbolic link", path);
            return 2;
        }
        return push_errno(L, path, err);
    }
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
    return 1;
}

static int sys_clock(lua_State *L)
{
    lua_pushnumber(L, clock_mono());
    return 1;
}

static int sys_wall(lua_State *L)
{
    lua_pushnumber(L, clock_wall());
    return 1;
}

/* now([wall seconds]) -> ISO 8601 with milliseconds and offset */
static int sys_now(lua_State *L)
{
    char buf[48];
    clock_iso8601(luaL_optnumber(L, 1, clock_wall()), buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int sys_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int sys_exepath(lua_State *L)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0)
        return push_errno(L, "/proc/self/exe", errno);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int sys_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

/* sleep(seconds): waits in the event loop, so output is read and callbacks run. */
static int sys_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0, 1, "seconds must not be negative");
    host_wait(L, -1, 0, s);
    return 0;
}

/* wait_readable(fd, [timeout]) -> true when fd is readable, false on timeout. Waits in
 * the event loop: child output is read, deadlines and Ctrl-C are honoured. */
static int sys_wait_readable(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_pushboolean(L, host_wait(L, fd, POLLIN, luaL_optnumber(L, 2, -1)));
    return 1;
}

/* set_memory_limit(megabytes): caps the Lua heap while test code runs (0: no cap) */
static int sys_set_memory_limit(lua_State *L)
{
    lua_Number mb = luaL_checknumber(L, 1);
    luaL_argcheck(L, mb >= 0, 1, "must not be negative");
    host_set_memory_limit((size_t)(mb * 1024 * 1024));
    return 0;
}

/* stat(path) -> { kind = "file"|"dir"|"other", dev, ino, size, mode } | nil, err, code
 * (follows symbolic links; dev and ino tell a real folder seen before) */
static int sys_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        push_errno(L, path, err);
        lua_pushstring(L, err == ENOENT ? "ENOENT" : err == EACCES ? "EACCES" : err == ELOOP ? "ELOOP" : err == ENOTDIR ? "ENOTDIR" : "EIO");
        return 3;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, (lua_Integer)st.st_dev);
    lua_setfield(L, -2, "dev");
    lua_pushinteger(L, (lua_Integer)st.st_ino);
    lua_setfield(L, -2, "ino");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    return 1;
}

int luaopen_hplua_sys(lua_State *L)
{
    static const luaL_Reg fns[] = {{"listdir", sys_listdir},
                                   {"kind", sys_kind},
                                   {"clock", sys_clock},
                                   {"wall", sys_wall},
                                   {"now", sys_now},
                                   {"isatty", sys_isatty},
                                   {"exepath", sys_exepath},
                                   {"sleep", sys_sleep},
                                   {"wait_readable", sys_wait_readable},
                                   {"getpid", sys_getpid},
                                   {"set_memory_limit", sys_set_memory_limit},
                                   {"stat", sys_stat},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    guard_register(L);
    lua_pushstring(L, HPLUA_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
