/* hplua.sys: the few POSIX calls the runner needs (directories, file types,
 * clocks, terminals) plus the guard's entry points. */
#include "clock.h"
#include "fdio.h"
#include "fdset.h"
#include "heap.h"
#include "host.h"
#include "loop.h"
#include "orphans.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A failure of the world: nil, "what: reason", and a code word. */
static int push_fail(lua_State *L, const char *what, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    lua_pushstring(L, err == ENOENT ? "ENOENT" : err == EACCES ? "EACCES" : err == EAGAIN ? "EAGAIN"
                      : err == EPIPE ? "EPIPE" : err == ELOOP ? "ELOOP" : err == ENOSPC ? "ENOSPC"
                      : err == ENOTDIR ? "ENOTDIR" : "EIO");
    return 3;
}

/* listdir(path) -> { names } (unsorted, without . and ..) | nil, err */
static int sys_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d)
        return push_fail(L, path, errno);
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
        return push_fail(L, path, err);
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
        return push_fail(L, "/proc/self/exe", errno);
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
    loop_wait(L, -1, 0, s);
    return 0;
}

/* wait_readable(fd, [timeout]) -> true when fd is readable, false on timeout. Waits in
 * the event loop: child output is read, deadlines and Ctrl-C are honoured. */
static int sys_wait_readable(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_pushboolean(L, loop_wait(L, fd, POLLIN, luaL_optnumber(L, 2, -1)));
    return 1;
}

/* set_memory_limit(megabytes): caps the Lua heap while test code runs (0: no cap) */
static int sys_set_memory_limit(lua_State *L)
{
    lua_Number mb = luaL_checknumber(L, 1);
    luaL_argcheck(L, mb >= 0, 1, "must not be negative");
    heap_set_limit((size_t)(mb * 1024 * 1024));
    return 0;
}

/* ---- plain file descriptors: the events file (--events), the station's control FIFO ---- */


/* open(path, "w"|"r") -> fd | nil, message, code. "w" creates or truncates and never
 * follows a final symbolic link; "r" opens non-blocking (a FIFO opens at once). */
static int sys_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_checkstring(L, 2);
    int flags;
    if (strcmp(mode, "w") == 0)
        flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC;
    else if (strcmp(mode, "r") == 0)
        flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
    else
        return luaL_argerror(L, 2, "mode must be \"w\" or \"r\"");
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return push_fail(L, path, errno);
    lua_pushinteger(L, fd);
    return 1;
}

/* A temporary file's handle: io's own (first, so io's functions take it) and the
 * stdio buffer it was given, freed when it is closed. */
typedef struct {
    luaL_Stream stream;
    char *buffer;
} tmp_stream;

static int tmpfile_close(lua_State *L)
{
    tmp_stream *t = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int ok = fclose(t->stream.f) == 0;
    free(t->buffer);
    t->buffer = NULL;
    return luaL_fileresult(L, ok, NULL);
}

/* tmpfile([buffer]) -> file | nil, message, code: io.tmpfile's unnamed temporary, but
 * not inherited by the children hplua starts (close-on-exec). buffer: the size of its
 * stdio buffer in bytes (glibc's setvbuf ignores a size given without a buffer, and
 * writes 4 KiB at a time: a system call each). */
static int sys_tmpfile(lua_State *L)
{
    lua_Integer size = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, size >= 0 && size <= (1 << 24), 1, "must be 0 to 16 MiB");
    tmp_stream *t = lua_newuserdatauv(L, sizeof(tmp_stream), 0);
    t->stream.closef = NULL; /* a closed file until it is open */
    t->buffer = NULL;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    t->stream.f = tmpfile();
    if (!t->stream.f)
        return push_fail(L, "temporary file", errno);
    fcntl(fileno(t->stream.f), F_SETFD, FD_CLOEXEC);
    t->stream.closef = tmpfile_close;
    if (size > 0 && (t->buffer = malloc((size_t)size)) != NULL) /* else stdio's own */
        setvbuf(t->stream.f, t->buffer, _IOFBF, (size_t)size);
    return 1;
}

/* inherited(fd, [writable]) -> boolean: was fd open when hplua started (for writing)? */
static int sys_inherited(lua_State *L)
{
    lua_pushboolean(L, fd_inherited((int)luaL_checkinteger(L, 1), lua_toboolean(L, 2)));
    return 1;
}

/* pread(file, offset, length) -> string | nil, message, code: length bytes of an open
 * Lua file from offset, read from its descriptor (past its stdio buffer, whatever
 * state a failed write left that in); fewer where the file ends. */
static int sys_pread(lua_State *L)
{
    luaL_Stream *f = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    lua_Integer off = luaL_checkinteger(L, 2), len = luaL_checkinteger(L, 3);
    luaL_argcheck(L, f->closef != NULL, 1, "the file is closed");
    luaL_argcheck(L, off >= 0, 2, "must not be negative");
    luaL_argcheck(L, len >= 0, 3, "must not be negative");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)len);
    long long got = fd_pread_full(fileno(f->f), p, (size_t)len, off);
    if (got < 0)
        return push_fail(L, "read", (int)-got);
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

/* write(fd, s, [tail]) -> true | nil, message, code: all of s (then tail), across
 * partial writes. */
static int sys_write(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    if (!lua_isnoneornil(L, 3)) {
        lua_settop(L, 3);
        lua_concat(L, 2);
        s = lua_tolstring(L, 2, &len);
    }
    int err = fd_write_all(fd, s, len);
    if (err)
        return push_fail(L, "write", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* read(fd, [max]) -> data ("" at end of file) | nil, message, code ("EAGAIN": nothing yet) */
#define READ_KEPT ((size_t)1 << 20)
static int sys_read(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 65536);
    luaL_argcheck(L, max > 0 && max <= (1 << 24), 2, "max must be between 1 and 16 MiB");
    /* small reads (a supervisor's FIFO, often empty) need no buffer from the heap;
     * larger ones up to READ_KEPT go through one buffer kept in the registry, the
     * largest asked for so far (a fresh one per read would have its pages
     * populated, or faulted in, each time for the few kilobytes a pipe holds) */
    char small[16384];
    luaL_Buffer b;
    char *p = small;
    if ((size_t)max > READ_KEPT) {
        p = luaL_buffinitsize(L, &b, (size_t)max);
    } else if ((size_t)max > sizeof small) {
        lua_getfield(L, LUA_REGISTRYINDEX, "hplua.sys.read");
        p = lua_touserdata(L, -1);
        if (!p || lua_rawlen(L, -1) < (size_t)max) {
            p = lua_newuserdatauv(L, (size_t)max, 0);
            lua_setfield(L, LUA_REGISTRYINDEX, "hplua.sys.read");
        }
        lua_pop(L, 1);
    }
    ssize_t n;
    do
        n = read(fd, p, (size_t)max);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return push_fail(L, "read", errno);
    if ((size_t)max > READ_KEPT)
        luaL_pushresultsize(&b, (size_t)n);
    else
        lua_pushlstring(L, p, (size_t)n); /* the kept buffer: anchored by the registry */
    return 1;
}

static int sys_close(lua_State *L)
{
    close((int)luaL_checkinteger(L, 1));
    return 0;
}

/* realpath(path) -> absolute path | nil, message, code */
static int sys_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r)
        return push_fail(L, path, errno);
    lua_pushstring(L, r);
    free(r);
    return 1;
}

/* stat(path) -> { kind = "file"|"dir"|"other", dev, ino, size, mode } | nil, err, code
 * (follows symbolic links; dev and ino tell a real folder seen before) */
static int sys_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        return push_fail(L, path, errno);
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

/* detach(argv, [env]) -> true | nil, message: starts argv in a session of its own,
 * not a child of ours (fork twice), stdio on /dev/null, no descriptor inherited, no
 * run token (HPLUA_RUNS): the end-of-run sweep and the run's watchdog leave it alone.
 * env: { NAME = "value" | false (unset) }. Nothing waits for it. */
/* The argument list at idx (a table of 1..255 strings) as a NULL-ended array, kept
 * in a userdata pushed on the stack; the strings stay referenced by the table. */
static const char **check_argv(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 1 && n < 256, idx, "1..255 arguments");
    const char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        argv[i - 1] = lua_tostring(L, -1);
        if (!argv[i - 1])
            luaL_argerror(L, idx, "arguments must be strings");
        lua_pop(L, 1);
    }
    argv[n] = NULL;
    return argv;
}

static int sys_detach(lua_State *L)
{
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    const char **argv = check_argv(L, 1);
    orphans_note_spawn();
    /* our own subreaper mark would take the grandchild back as ours */
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() != 0)
            _exit(0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        int null_fd = open("/dev/null", O_RDWR);
        for (int i = 0; i < 3; i++)
            if (null_fd >= 0 && null_fd != i)
                dup2(null_fd, i);
        close_range(3, ~0U, 0);
        unsetenv("HPLUA_RUNS");
        if (lua_istable(L, 2)) {
            lua_pushnil(L);
            while (lua_next(L, 2)) {
                if (lua_type(L, -2) == LUA_TSTRING) {
                    if (lua_isstring(L, -1))
                        setenv(lua_tostring(L, -2), lua_tostring(L, -1), 1);
                    else
                        unsetenv(lua_tostring(L, -2));
                }
                lua_pop(L, 1);
            }
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int err = errno;
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (pid < 0)
        return push_fail(L, "fork", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* helper(argv) -> pid, to_fd, from_fd | nil, message, code: starts argv as a child
 * of ours in a session of its own (no signal to hplua's terminal or process group
 * reaches it), its stdin and stdout pipes whose other ends are returned
 * (close-on-exec), our stderr, no other descriptor, no run token (HPLUA_RUNS), and
 * spared by the end-of-run sweep: a helper that ends by itself when its stdin
 * ends, even after hplua is killed. helper_done(pid) stops sparing it. */
static int sys_helper(lua_State *L)
{
    const char **argv = check_argv(L, 1);
    int to[2] = {-1, -1}, from[2] = {-1, -1};
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
        int err = errno;
        for (int i = 0; i < 2; i++) {
            if (to[i] >= 0)
                close(to[i]);
            if (from[i] >= 0)
                close(from[i]);
        }
        return push_fail(L, "pipe", err);
    }
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        dup2(to[0], 0);
        dup2(from[1], 1);
        close_range(3, ~0U, 0);
        unsetenv("HPLUA_RUNS");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int err = errno;
    close(to[0]);
    close(from[1]);
    /* room for what a run writes while the helper gathers (best effort) */
    fcntl(to[1], F_SETPIPE_SZ, 1 << 20);
    if (pid < 0) {
        close(to[1]);
        close(from[0]);
        return push_fail(L, "fork", err);
    }
    orphans_spare(pid, true);
    lua_pushinteger(L, pid);
    lua_pushinteger(L, to[1]);
    lua_pushinteger(L, from[0]);
    return 3;
}

/* helper_done(pid, [stuck]) -> ended: the helper is no longer spared. Not stuck: it
 * is ending (it has said its last word and closed its end, or its stdin was closed
 * before it had read anything, and it ends as soon as it has started); it is
 * collected here (within HELPER_END s), so that nobody who reads what it wrote finds
 * it alive, or a zombie that looks alive. ECHILD: already collected (the process
 * engine's wait4(-1) walk). Stuck, or not ended in time: the end-of-run sweep looks
 * for it. */
#define HELPER_END 2.0
static int sys_helper_done(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    orphans_spare(pid, false);
    int ended = 0;
    if (!lua_toboolean(L, 2)) {
        double end = clock_mono() + HELPER_END;
        long nap = 20000; /* ns, doubled up to 10 ms */
        for (;;) {
            pid_t r = waitpid(pid, NULL, WNOHANG);
            if (r != 0 && !(r < 0 && errno == EINTR)) {
                ended = 1; /* collected, or not ours to collect (ECHILD: already) */
                break;
            }
            if (clock_mono() >= end)
                break;
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            if (nap < 10000000)
                nap *= 2;
        }
    }
    if (!ended)
        orphans_note_spawn();
    lua_pushboolean(L, ended);
    return 1;
}

/* ---- fdset(): descriptors watched together (a supervisor's channels), one pollable fd ---- */

#define FDSET_MT "hplua.sys.fdset"

typedef struct lfdset {
    int fd;
} lfdset;

static lfdset *check_fdset(lua_State *L)
{
    lfdset *s = luaL_checkudata(L, 1, FDSET_MT);
    if (s->fd < 0)
        luaL_argerror(L, 1, "the set is closed");
    return s;
}

/* fdset() -> set | nil, message, code */
static int sys_fdset(lua_State *L)
{
    lfdset *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->fd = -1; /* born closed: __gc is safe whatever happens next */
    luaL_setmetatable(L, FDSET_MT);
    s->fd = fdset_open();
    if (s->fd < 0)
        return push_fail(L, "epoll", errno);
    return 1;
}

/* set:add(fd) / set:remove(fd) -> true | nil, message, code */
static int fdset_change(lua_State *L, int add)
{
    lfdset *s = check_fdset(L);
    int fd = (int)luaL_checkinteger(L, 2);
    int err = add ? fdset_add(s->fd, fd) : fdset_remove(s->fd, fd);
    if (err)
        return push_fail(L, "epoll", err);
    lua_pushboolean(L, 1);
    return 1;
}

static int fdset_l_add(lua_State *L) { return fdset_change(L, 1); }
static int fdset_l_remove(lua_State *L) { return fdset_change(L, 0); }

/* set:ready() -> { fd, ... } of the members ready now (up to 64; no wait) */
static int fdset_l_ready(lua_State *L)
{
    lfdset *s = check_fdset(L);
    int fds[64];
    int n = fdset_ready(s->fd, fds, 64);
    if (n < 0)
        return push_fail(L, "epoll", errno);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, fds[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int fdset_l_fileno(lua_State *L)
{
    lua_pushinteger(L, check_fdset(L)->fd);
    return 1;
}

static int fdset_l_close(lua_State *L)
{
    lfdset *s = luaL_checkudata(L, 1, FDSET_MT);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    return 0;
}

static void fdset_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", fdset_l_add},       {"remove", fdset_l_remove}, {"ready", fdset_l_ready},
        {"fileno", fdset_l_fileno}, {"close", fdset_l_close},   {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", fdset_l_close}, {"__close", fdset_l_close}, {NULL, NULL}};
    luaL_newmetatable(L, FDSET_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
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
                                   {"open", sys_open},
                                   {"tmpfile", sys_tmpfile},
                                   {"write", sys_write},
                                   {"read", sys_read},
                                   {"pread", sys_pread},
                                   {"inherited", sys_inherited},
                                   {"close", sys_close},
                                   {"realpath", sys_realpath},
                                   {"stat", sys_stat},
                                   {"detach", sys_detach},
                                   {"helper", sys_helper},
                                   {"helper_done", sys_helper_done},
                                   {"fdset", sys_fdset},
                                   {NULL, NULL}};
    fdset_register(L);
    luaL_newlib(L, fns);
    guard_register(L);
    lua_pushstring(L, HPLUA_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
