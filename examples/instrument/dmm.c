/* dmm: a SCPI multimeter driver over TCP (LXI instruments listen on port 5025),
 * as an hplua instrument module. Every wait goes through hplua_wait_fd, so a slow
 * or silent instrument never freezes the host: child output keeps draining and
 * the test's timeout and Ctrl-C still work.
 *
 *   local dmm = require "dmm"
 *   local dev <close> = assert(dmm.open("192.0.2.10", 5025, { timeout = 2 }))
 *   local volts = tonumber(assert(dev:query("MEAS:VOLT:DC?")))
 *   dev:measure("vcc", "MEAS:VOLT:DC?", 3.2, 3.4, "V")   -- recorded on the test
 *
 * Instrument problems (refused, timed out, closed) return nil, message; misuse
 * (wrong argument types, a closed connection) raises.
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags hplua) dmm.c -o dmm.so
 */
#include <hplua.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DMM_MT "dmm.connection"

typedef struct dmm_conn {
    int fd; /* -1 once closed: the userdata is born closed */
    double timeout;
    size_t len;
    char peer[300];
    char buf[8192];
} dmm_conn;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(lua_State *L, const char *fmt, const char *a, const char *b)
{
    lua_pushnil(L);
    lua_pushfstring(L, fmt, a, b);
    return 2;
}

static dmm_conn *check_conn(lua_State *L)
{
    dmm_conn *c = luaL_checkudata(L, 1, DMM_MT);
    if (c->fd < 0)
        luaL_error(L, "dmm: the connection is closed");
    return c;
}

static int conn_close(lua_State *L)
{
    dmm_conn *c = luaL_checkudata(L, 1, DMM_MT);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    return 0;
}

/* dmm.open(host, port, [{ timeout = seconds }]) -> connection | nil, message */
static int dmm_open(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1..65535");
    double timeout = 5.0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        int t = lua_getfield(L, 3, "timeout");
        if (t != LUA_TNIL) {
            luaL_argexpected(L, t == LUA_TNUMBER, 3, "number for option 'timeout'");
            timeout = lua_tonumber(L, -1);
            luaL_argcheck(L, timeout > 0, 3, "option 'timeout' must be positive");
        }
        lua_pop(L, 1);
    }
    dmm_conn *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->fd = -1;
    c->len = 0;
    c->timeout = timeout;
    snprintf(c->peer, sizeof c->peer, "%s:%d", host, (int)port);
    luaL_setmetatable(L, DMM_MT);

    char service[16];
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", (int)port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return fail(L, "dmm: cannot resolve %s: %s", host, gai_strerror(rc));
    c->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        freeaddrinfo(res);
        return fail(L, "dmm: socket: %s%s", strerror(errno), "");
    }
    rc = connect(c->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS)
        return fail(L, "dmm: cannot connect to %s: %s", c->peer, strerror(errno));
    if (rc != 0) {
        /* may raise the test's timeout: the userdata on the stack closes the socket */
        if (hplua_wait_fd(L, c->fd, POLLOUT, timeout) == HPLUA_TIMEOUT)
            return fail(L, "dmm: connecting to %s timed out%s", c->peer, "");
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            return fail(L, "dmm: cannot connect to %s: %s", c->peer, strerror(err));
    }
    int one = 1; /* a command and its reply are tiny: send them at once */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    hplua_set_message(L, NULL, "dmm: connected to %s", c->peer);
    return 1;
}

static int send_line(lua_State *L, dmm_conn *c, const char *cmd, size_t len)
{
    char line[1024];
    luaL_argcheck(L, len < sizeof line - 1 && !memchr(cmd, '\n', len), 2, "one SCPI command of under 1023 bytes");
    memcpy(line, cmd, len);
    line[len++] = '\n';
    size_t off = 0;
    double end = now() + c->timeout;
    while (off < len) {
        ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (hplua_wait_fd(L, c->fd, POLLOUT, end - now()) == HPLUA_TIMEOUT)
                return fail(L, "dmm: %s: timed out sending%s", c->peer, "");
        } else {
            return fail(L, "dmm: %s: %s", c->peer, strerror(errno));
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* dev:write(cmd) -> true | nil, message */
static int conn_write(lua_State *L)
{
    dmm_conn *c = check_conn(L);
    size_t len;
    const char *cmd = luaL_checklstring(L, 2, &len);
    return send_line(L, c, cmd, len);
}

/* Reads one reply line (without \r\n) -> string | nil, message */
static int read_line(lua_State *L, dmm_conn *c)
{
    double end = now() + c->timeout;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            lua_pushlstring(L, c->buf, n && c->buf[n - 1] == '\r' ? n - 1 : n);
            c->len -= n + 1;
            memmove(c->buf, nl + 1, c->len);
            return 1;
        }
        if (c->len == sizeof c->buf)
            return fail(L, "dmm: %s: reply longer than %s bytes", c->peer, "8192");
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
        } else if (n == 0) {
            return fail(L, "dmm: %s closed the connection%s", c->peer, "");
        } else if (errno == EAGAIN || errno == EINTR) {
            if (hplua_wait_fd(L, c->fd, POLLIN, end - now()) == HPLUA_TIMEOUT) {
                char t[32];
                snprintf(t, sizeof t, "%g", c->timeout);
                return fail(L, "dmm: %s did not answer within %s s", c->peer, t);
            }
        } else {
            return fail(L, "dmm: %s: %s", c->peer, strerror(errno));
        }
    }
}

/* dev:query(cmd) -> reply | nil, message */
static int conn_query(lua_State *L)
{
    dmm_conn *c = check_conn(L);
    size_t len;
    const char *cmd = luaL_checklstring(L, 2, &len);
    if (send_line(L, c, cmd, len) != 1)
        return 2;
    lua_pop(L, 1);
    return read_line(L, c);
}

/* dev:measure(name, query, [min, max, [unit]]) -> value, within_limits | nil, message
 * Queries a number and records it on the running test through hplua_measure. */
static int conn_measure(lua_State *L)
{
    check_conn(L);
    const char *name = luaL_checkstring(L, 2);
    luaL_checkstring(L, 3);
    double min = luaL_optnumber(L, 4, HPLUA_NO_LIMIT), max = luaL_optnumber(L, 5, HPLUA_NO_LIMIT);
    const char *unit = luaL_optstring(L, 6, NULL);
    lua_settop(L, 6);
    lua_pushcfunction(L, conn_query);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 2;
    int isnum = 0;
    double v = lua_tonumberx(L, -2, &isnum);
    if (!isnum)
        return fail(L, "dmm: reply to %s is not a number: %s", lua_tostring(L, 3), lua_tostring(L, -2));
    int ok = hplua_measure(L, name, v, unit, min, max);
    const char *test = hplua_current_test(L);
    hplua_set_message(L, NULL, "dmm: %s = %g%s%s (%s)", name, v, unit ? " " : "", unit ? unit : "",
                      test ? test : "no test");
    lua_pushnumber(L, v);
    lua_pushboolean(L, ok);
    return 2;
}

static int conn_tostring(lua_State *L)
{
    dmm_conn *c = luaL_checkudata(L, 1, DMM_MT);
    lua_pushfstring(L, "dmm %s (%s)", c->peer, c->fd >= 0 ? "open" : "closed");
    return 1;
}

int luaopen_dmm(lua_State *L)
{
    HPLUA_CHECK_ABI(L);
    static const luaL_Reg methods[] = {
        {"query", conn_query}, {"write", conn_write}, {"measure", conn_measure}, {"close", conn_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", conn_close}, {"__close", conn_close}, {"__tostring", conn_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"open", dmm_open}, {NULL, NULL}};
    luaL_newmetatable(L, DMM_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
