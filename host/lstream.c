/* hplua.stream: hp.serial.open and hp.tcp.connect, byte streams whose every wait
 * runs in hplua's event loop (loop_wait), so child output keeps flowing and the
 * test's deadline and Ctrl-C cut a blocked read. The OS side is stream.c.
 *
 * Reads go through a buffer owned by the stream: data the kernel delivers beyond
 * what a call returns stays there for the next call, and a call that times out
 * or meets the end of the stream consumes nothing (it returns a copy of what is
 * buffered as its 4th value). The buffer grows only as far as the request needs:
 * a line or a read_until match is refused beyond max_line bytes. */
#include "clock.h"
#include "crossings.h"
#include "host.h"
#include "loop.h"
#include "stream.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STREAM_MT "hplua.stream"
#define FIND_KEY "hplua.stream.find" /* registry: the original string.find */
#define CHUNK 65536                  /* bytes asked of the kernel per read */
#define DEFAULT_MAX_LINE 65536
#define KEEP_CAP (256 * 1024)        /* an empty buffer larger than this is freed */

enum { KIND_SERIAL, KIND_TCP };

typedef struct stream {
    int fd;            /* -1 once closed: the userdata is born closed */
    int kind;
    int eof;           /* the far end closed; sticky */
    double timeout;    /* default per-call timeout, < 0: none */
    size_t max_line;
    long baud;         /* serial: for drain's polling interval */
    char *buf;         /* buffered input is buf[start .. start + len) */
    size_t start, len, cap;
    unsigned gen;      /* bumped whenever buffered data is consumed */
    char name[280];    /* device path, or host:port */
} stream;

/* ---- results ------------------------------------------------------------ */

/* Seconds as the guard's messages print them: 0.5, 2, 0.01 (not 2.0). */
static const char *secs(lua_State *L, double t)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%g", t);
    return lua_pushstring(L, buf);
}

/* nil, message, code [, partial]: failures of the world. */
static int fail(lua_State *L, stream *s, int with_partial, const char *code, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushstring(L, code);
    if (!with_partial)
        return 3;
    lua_pushlstring(L, s ? s->buf + s->start : "", s ? s->len : 0);
    return 4;
}

static int fail_errno(lua_State *L, stream *s, int with_partial, int err)
{
    char tmp[16];
    if (err == EPIPE || err == ECONNRESET)
        return fail(L, s, with_partial, "closed", "%s: closed by the other end (%s)", s->name, strerror(err));
    return fail(L, s, with_partial, stream_errno_name(err, tmp, sizeof tmp), "%s: %s", s->name, strerror(err));
}

/* ---- the stream object -------------------------------------------------- */

static stream *new_stream(lua_State *L, int kind)
{
    stream *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->kind = kind;
    s->timeout = -1;
    s->max_line = DEFAULT_MAX_LINE;
    luaL_setmetatable(L, STREAM_MT);
    return s;
}

static void free_buffer(lua_State *L, stream *s)
{
    if (s->buf) {
        void *ud;
        lua_Alloc alloc = lua_getallocf(L, &ud);
        alloc(ud, s->buf, s->cap, 0);
    }
    s->buf = NULL;
    s->start = s->len = s->cap = 0;
}

static int s_close(lua_State *L)
{
    stream *s = luaL_checkudata(L, 1, STREAM_MT);
    if (s->fd >= 0) {
        if (s->kind == KIND_SERIAL)
            serial_close(s->fd);
        else
            close(s->fd);
        s->fd = -1;
    }
    free_buffer(L, s);
    lua_pushboolean(L, 1);
    return 1;
}

static stream *check_open(lua_State *L)
{
    stream *s = luaL_checkudata(L, 1, STREAM_MT);
    if (s->fd < 0)
        luaL_error(L, "%s: the stream is closed", s->name);
    return s;
}

/* The timeout of one call: argument arg, else the stream's; < 0 means none. */
static double call_timeout(lua_State *L, stream *s, int arg)
{
    if (lua_isnoneornil(L, arg))
        return s->timeout;
    if (lua_type(L, arg) != LUA_TNUMBER)
        luaL_typeerror(L, arg, "number of seconds");
    double t = lua_tonumber(L, arg);
    luaL_argcheck(L, t >= 0, arg, "timeout must not be negative");
    return isinf(t) ? -1 : t;
}

/* Room for at least `more` bytes after the buffered data. */
static void reserve(lua_State *L, stream *s, size_t more)
{
    if (s->start + s->len + more <= s->cap)
        return;
    if (s->start) { /* compact first */
        memmove(s->buf, s->buf + s->start, s->len);
        s->start = 0;
        if (s->len + more <= s->cap)
            return;
    }
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + more)
        cap *= 2;
    void *ud;
    lua_Alloc alloc = lua_getallocf(L, &ud);
    char *nb = alloc(ud, s->buf, s->cap, cap);
    if (!nb)
        luaL_error(L, "%s: not enough memory for a %I-byte read buffer", s->name, (lua_Integer)cap);
    s->buf = nb;
    s->cap = cap;
}

static void consume(lua_State *L, stream *s, size_t n)
{
    s->gen++;
    s->start += n;
    s->len -= n;
    if (s->len == 0) {
        s->start = 0;
        if (s->cap > KEEP_CAP)
            free_buffer(L, s);
    }
}

enum { FILL_DATA, FILL_TIMEOUT, FILL_CLOSED }; /* or FILL_ERROR(errno) */
#define FILL_ERROR(err) (100 + (err))

/* Reads what the kernel has (at most CHUNK bytes, so the buffer never holds
 * more than a request needs plus one CHUNK), waiting in the event loop until the
 * deadline `end` (0: none) when it has nothing. */
static int fill(lua_State *L, stream *s, double end)
{
    size_t want = CHUNK;
    for (;;) {
        /* on_line callbacks run during the wait and may use this stream too:
         * everything is checked again after each wait */
        if (s->fd < 0)
            luaL_error(L, "%s: the stream was closed while a call waited on it", s->name);
        if (s->eof)
            return FILL_CLOSED;
        reserve(L, s, want);
        ssize_t n = stream_read(s->fd, s->buf + s->start + s->len, want);
        if (n > 0) {
            s->len += (size_t)n;
            return FILL_DATA;
        }
        if (n == 0) {
            s->eof = 1;
            return FILL_CLOSED;
        }
        if (n != -EAGAIN)
            return FILL_ERROR((int)-n);
        double left = -1;
        if (end) {
            left = end - clock_mono();
            if (left <= 0)
                return FILL_TIMEOUT;
        }
        /* may raise the test's timeout or interrupt: nothing here needs freeing */
        if (!loop_wait(L, s->fd, POLLIN, left) && end)
            return FILL_TIMEOUT;
    }
}

static double deadline_of(double t) { return t < 0 ? 0 : clock_mono() + t; }

static int fill_failed(lua_State *L, stream *s, int rc, double t, const char *what)
{
    if (rc == FILL_TIMEOUT)
        return fail(L, s, 1, "timeout", "%s: %s within %s s", s->name, what, secs(L, t));
    if (rc == FILL_CLOSED)
        return fail(L, s, 1, "closed", "%s: closed by the other end%s", s->name,
                    s->len ? " (an incomplete reply is buffered)" : "");
    return fail_errno(L, s, 1, rc - 100);
}

/* ---- methods ------------------------------------------------------------ */

/* s:write(data, [timeout]) -> true | nil, message, code, bytes_written */
static int s_write(lua_State *L)
{
    stream *s = check_open(L);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    double t = call_timeout(L, s, 3), end = deadline_of(t);
    int is_socket = s->kind == KIND_TCP;
    while (off < len) {
        ssize_t n = stream_write(s->fd, is_socket, data + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n != -EAGAIN) {
            int rc = fail_errno(L, s, 0, n == 0 ? EPIPE : (int)-n);
            lua_pushinteger(L, (lua_Integer)off);
            return rc + 1;
        }
        double left = end ? end - clock_mono() : -1;
        if ((end && left <= 0) || (!loop_wait(L, s->fd, POLLOUT, left) && end)) {
            fail(L, s, 0, "timeout", "%s: could not send within %s s (%I of %I bytes sent)", s->name, secs(L, t),
                 (lua_Integer)off, (lua_Integer)len);
            lua_pushinteger(L, (lua_Integer)off);
            return 4;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* s:read(n, [timeout]) -> exactly n bytes | nil, message, code, buffered */
static int s_read(lua_State *L)
{
    stream *s = check_open(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0, 2, "the byte count must not be negative");
    double t = call_timeout(L, s, 3), end = deadline_of(t);
    while (s->len < (size_t)n) {
        int rc = fill(L, s, end);
        if (rc != FILL_DATA) {
            char what[64];
            snprintf(what, sizeof what, "%zu of %lld bytes", s->len, (long long)n);
            return fill_failed(L, s, rc, t, what);
        }
    }
    lua_pushlstring(L, s->buf + s->start, (size_t)n);
    consume(L, s, (size_t)n);
    return 1;
}

/* s:read_line([timeout]) -> line without "\n" or "\r\n" | nil, message, code, buffered */
static int s_read_line(lua_State *L)
{
    stream *s = check_open(L);
    double t = call_timeout(L, s, 2), end = deadline_of(t);
    size_t scanned = 0;
    unsigned gen = s->gen;
    for (;;) {
        if (gen != s->gen) { /* a callback consumed data meanwhile */
            scanned = 0;
            gen = s->gen;
        }
        char *nl = s->len > scanned ? memchr(s->buf + s->start + scanned, '\n', s->len - scanned) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (s->buf + s->start));
            if (n > s->max_line)
                break;
            lua_pushlstring(L, s->buf + s->start, n && nl[-1] == '\r' ? n - 1 : n);
            consume(L, s, n + 1);
            return 1;
        }
        scanned = s->len;
        if (s->len > s->max_line)
            break;
        int rc = fill(L, s, end);
        if (rc != FILL_DATA)
            return fill_failed(L, s, rc, t, "no complete line");
    }
    return fail(L, s, 1, "EMSGSIZE", "%s: no end of line within %I bytes (max_line)", s->name,
                (lua_Integer)s->max_line);
}

/* s:read_until(pattern, [timeout]) -> data up to and including the first match of
 * the Lua pattern | nil, message, code, buffered */
static int s_read_until(lua_State *L)
{
    stream *s = check_open(L);
    luaL_checkstring(L, 2);
    double t = call_timeout(L, s, 3), end = deadline_of(t);
    int checked_empty = 0;
    for (;;) {
        if (s->len || !checked_empty) {
            checked_empty = 1;
            lua_getfield(L, LUA_REGISTRYINDEX, FIND_KEY);
            lua_pushlstring(L, s->buf ? s->buf + s->start : "", s->len);
            lua_pushvalue(L, 2);
            if (lua_pcall(L, 2, 2, 0) != LUA_OK) /* string.find is C: no guard error can pass here */
                luaL_argerror(L, 2, lua_tostring(L, -1));
            if (lua_isinteger(L, -1)) {
                size_t e = (size_t)lua_tointeger(L, -1);
                lua_pop(L, 2);
                if (e <= s->max_line) {
                    lua_pushlstring(L, s->buf ? s->buf + s->start : "", e);
                    consume(L, s, e);
                    return 1;
                }
                break;
            }
            lua_pop(L, 2);
        }
        if (s->len > s->max_line)
            break;
        int rc = fill(L, s, end);
        if (rc != FILL_DATA)
            return fill_failed(L, s, rc, t, lua_pushfstring(L, "no match for '%s'", lua_tostring(L, 2)));
    }
    return fail(L, s, 1, "EMSGSIZE", "%s: no match for '%s' within %I bytes (max_line)", s->name,
                lua_tostring(L, 2), (lua_Integer)s->max_line);
}

/* s:drain([timeout]) -> true once everything written has left: serial, sent on
 * the line (TIOCOUTQ empty, then tcdrain); TCP, acknowledged by the peer
 * (SIOCOUTQ empty) | nil, message, "timeout", bytes_pending */
static int s_drain(lua_State *L)
{
    stream *s = check_open(L);
    double t = call_timeout(L, s, 2), end = deadline_of(t), pause = 0.0005;
    for (;;) {
        int pending = 0;
        if (stream_outq(s->fd, &pending) != 0)
            pending = 0; /* not known: nothing to wait for */
        if (pending <= 0)
            break;
        if (s->kind == KIND_SERIAL && s->baud > 0) /* about the time the queue needs */
            pause = (double)pending * 10.0 / (double)s->baud;
        else
            pause = pause * 2;
        pause = pause < 0.0005 ? 0.0005 : pause > 0.02 ? 0.02 : pause;
        double left = end ? end - clock_mono() : -1;
        if (end && left <= 0) {
            fail(L, s, 0, "timeout", "%s: %d bytes still unsent after %s s", s->name, pending, secs(L, t));
            lua_pushinteger(L, pending);
            return 4;
        }
        loop_wait(L, -1, 0, end && left < pause ? left : pause);
    }
    if (s->kind == KIND_SERIAL)
        serial_finish(s->fd);
    lua_pushboolean(L, 1);
    return 1;
}

/* s:discard() -> number of bytes dropped: the buffered input, and what the kernel
 * holds (serial: flushed; TCP: read without waiting, at most 1 MiB). */
static int s_discard(lua_State *L)
{
    stream *s = check_open(L);
    lua_Integer dropped = (lua_Integer)s->len;
    consume(L, s, s->len);
    if (s->kind == KIND_SERIAL) {
        serial_flush_input(s->fd);
    } else {
        char tmp[4096];
        ssize_t n;
        while (dropped < (1 << 20) && (n = stream_read(s->fd, tmp, sizeof tmp)) > 0)
            dropped += n;
    }
    lua_pushinteger(L, dropped);
    return 1;
}

static int s_tostring(lua_State *L)
{
    stream *s = luaL_checkudata(L, 1, STREAM_MT);
    lua_pushfstring(L, "%s %s (%s)", s->kind == KIND_SERIAL ? "serial" : "tcp", s->name, s->fd >= 0 ? "open" : "closed");
    return 1;
}

/* ---- options ------------------------------------------------------------ */

typedef struct options {
    double timeout;
    size_t max_line;
    serial_config serial;
} options;

static const char *const parity_names[] = {"none", "even", "odd", "mark", "space", NULL};
static const char *const flow_names[] = {"none", "rtscts", "xonxoff", NULL};

/* Raises "bad argument #arg to 'fname' (message)" naming the function as the
 * author wrote it (luaL_argerror cannot know it is hp.serial.open). */
static int arg_error(lua_State *L, const char *fname, int arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
}

/* A short description of the value at idx for error messages: 12, "12", true,
 * nil, a table. */
static const char *describe(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TNUMBER || lua_type(L, idx) == LUA_TBOOLEAN)
        return luaL_tolstring(L, idx, NULL);
    if (lua_isnoneornil(L, idx))
        return "nil";
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_pushfstring(L, "\"%s\"", lua_tostring(L, idx));
    return lua_pushfstring(L, "a %s", luaL_typename(L, idx));
}

static lua_Integer opt_integer(lua_State *L, const char *fname, int arg, const char *key, lua_Integer lo, lua_Integer hi)
{
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || lua_type(L, -1) != LUA_TNUMBER || v < lo || v > hi)
        arg_error(L, fname, arg, "option '%s' must be a whole number from %I to %I, got %s", key, lo, hi, describe(L, -1));
    return v;
}

static int opt_choice(lua_State *L, const char *fname, int arg, const char *key, const char *const names[])
{
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    for (int i = 0; v && names[i]; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    const char *got = describe(L, -1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; names[i]; i++) {
        luaL_addstring(&b, i ? ", " : "");
        luaL_addstring(&b, names[i]);
    }
    luaL_pushresult(&b);
    return arg_error(L, fname, arg, "option '%s' must be one of %s, got %s", key, lua_tostring(L, -1), got);
}

/* Reads the options table at arg; serial options only when serial is set. Raises
 * naming the option on a wrong type, a bad value or an unknown key. */
static void check_options(lua_State *L, const char *fname, int arg, int serial, options *o)
{
    o->timeout = -1;
    o->max_line = DEFAULT_MAX_LINE;
    o->serial = (serial_config){9600, 8, 'n', 1, SERIAL_FLOW_NONE};
    if (lua_isnoneornil(L, arg))
        return;
    if (!lua_istable(L, arg))
        arg_error(L, fname, arg, "options must be a table, got %s", describe(L, arg));
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (key && strcmp(key, "timeout") == 0) {
            if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 0))
                arg_error(L, fname, arg, "option 'timeout' must be a non-negative number of seconds, got %s",
                          describe(L, -1));
            o->timeout = isinf(lua_tonumber(L, -1)) ? -1 : lua_tonumber(L, -1);
        } else if (key && strcmp(key, "max_line") == 0) {
            o->max_line = (size_t)opt_integer(L, fname, arg, key, 1, (lua_Integer)1 << 30);
        } else if (serial && key && strcmp(key, "baud") == 0) {
            o->serial.baud = (long)opt_integer(L, fname, arg, key, 1, SERIAL_MAX_BAUD);
        } else if (serial && key && strcmp(key, "data_bits") == 0) {
            o->serial.data_bits = (int)opt_integer(L, fname, arg, key, 5, 8);
        } else if (serial && key && strcmp(key, "stop_bits") == 0) {
            o->serial.stop_bits = (int)opt_integer(L, fname, arg, key, 1, 2);
        } else if (serial && key && strcmp(key, "parity") == 0) {
            o->serial.parity = "neoms"[opt_choice(L, fname, arg, key, parity_names)];
        } else if (serial && key && strcmp(key, "flow") == 0) {
            o->serial.flow = opt_choice(L, fname, arg, key, flow_names);
        } else {
            arg_error(L, fname, arg, "unknown option %s%s", key ? lua_pushfstring(L, "'%s'", key) : describe(L, -2),
                      serial ? " (known: baud, data_bits, parity, stop_bits, flow, timeout, max_line)"
                             : " (known: timeout, max_line)");
        }
        lua_pop(L, 1);
    }
}

/* ---- hp.serial.open ----------------------------------------------------- */

/* open(device, [opts]) -> stream | nil, message, code */
static int serial_open_l(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        arg_error(L, "hp.serial.open", 1, "the device must be a string, got %s", describe(L, 1));
    const char *device = lua_tostring(L, 1);
    options o;
    check_options(L, "hp.serial.open", 2, 1, &o);
    stream *s = new_stream(L, KIND_SERIAL);
    snprintf(s->name, sizeof s->name, "%s", device);
    s->timeout = o.timeout;
    s->max_line = o.max_line;
    s->baud = o.serial.baud;
    long holder = 0;
    int err = serial_open(device, &o.serial, &s->fd, &holder);
    if (err == EBUSY) {
        if (holder)
            return fail(L, s, 0, "EBUSY", "%s: port busy (held by PID %I)", device, (lua_Integer)holder);
        return fail(L, s, 0, "EBUSY", "%s: port busy (held by another process)", device);
    }
    if (err == EACCES)
        return fail(L, s, 0, "EACCES", "%s: %s (is the user in the owning group, e.g. 'dialout'?)", device, strerror(err));
    if (err == ENOTTY)
        return fail(L, s, 0, "ENOTTY", "%s: not a serial port", device);
    if (err == EINVAL)
        return fail(L, s, 0, "EINVAL", "%s: the driver refused the settings (baud %I, %d data bits)", device,
                    (lua_Integer)o.serial.baud, o.serial.data_bits);
    if (err)
        return fail_errno(L, s, 0, err);
    char msg[400];
    snprintf(msg, sizeof msg, "serial %s opened (%ld %d%c%d)", device, o.serial.baud, o.serial.data_bits,
             "NEOMS"[strchr("neoms", o.serial.parity) - "neoms"], o.serial.stop_bits);
    crossing_message(L, NULL, msg);
    return 1;
}

/* ---- hp.tcp.connect ----------------------------------------------------- */

#define MAX_ADDRS 8

typedef struct addr_list {
    int n;
    socklen_t len[MAX_ADDRS];
    struct sockaddr_storage addr[MAX_ADDRS];
} addr_list;

static const char *gai_code(int rc)
{
    switch (rc) {
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_MEMORY: return "ENOMEM";
    default: return "EAI_FAIL";
    }
}

/* connect(host, port, [opts]) -> stream | nil, message, code */
static int tcp_connect_l(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        arg_error(L, "hp.tcp.connect", 1, "the host must be a string, got %s", describe(L, 1));
    const char *host = lua_tostring(L, 1);
    int isint = 0;
    lua_Integer port = lua_tointegerx(L, 2, &isint);
    if (!isint || lua_type(L, 2) != LUA_TNUMBER || port < 1 || port > 65535)
        arg_error(L, "hp.tcp.connect", 2, "the port must be a whole number from 1 to 65535, got %s", describe(L, 2));
    options o;
    check_options(L, "hp.tcp.connect", 3, 0, &o);
    stream *s = new_stream(L, KIND_TCP);
    snprintf(s->name, sizeof s->name, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, (int)port);
    s->timeout = o.timeout;
    s->max_line = o.max_line;

    /* Name resolution blocks (getaddrinfo); the addresses are copied into Lua
     * memory at once, so a raised timeout leaks nothing. */
    char service[16];
    snprintf(service, sizeof service, "%d", (int)port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return fail(L, s, 0, gai_code(rc), "cannot resolve '%s': %s", host, gai_strerror(rc));
    addr_list *al = lua_newuserdatauv(L, sizeof *al, 0);
    al->n = 0;
    for (struct addrinfo *ai = res; ai && al->n < MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof al->addr[0])
            continue;
        memcpy(&al->addr[al->n], ai->ai_addr, ai->ai_addrlen);
        al->len[al->n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res); /* al stays on the stack until we return */

    double end = deadline_of(o.timeout);
    int err = EHOSTUNREACH;
    for (int i = 0; i < al->n; i++) {
        err = tcp_start((struct sockaddr *)&al->addr[i], al->len[i], &s->fd);
        if (err == EINPROGRESS) {
            double left = end ? end - clock_mono() : -1;
            if ((end && left <= 0) || (!loop_wait(L, s->fd, POLLOUT, left) && end)) {
                close(s->fd);
                s->fd = -1;
                return fail(L, s, 0, "timeout", "%s: no connection within %s s", s->name, secs(L, o.timeout));
            }
            err = tcp_finish(s->fd);
        }
        if (err == 0)
            break;
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
    }
    if (err)
        return fail_errno(L, s, 0, err);
    lua_pop(L, 1); /* al */
    lua_pushfstring(L, "tcp %s connected", s->name);
    crossing_message(L, NULL, lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
}

int luaopen_hplua_stream(lua_State *L)
{
    static const luaL_Reg methods[] = {{"write", s_write},
                                       {"read", s_read},
                                       {"read_line", s_read_line},
                                       {"read_until", s_read_until},
                                       {"drain", s_drain},
                                       {"discard", s_discard},
                                       {"close", s_close},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", s_close}, {"__close", s_close}, {"__tostring", s_tostring}, {NULL, NULL}};
    if (luaL_newmetatable(L, STREAM_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    /* read_until matches with the string library as it was, whatever test code does to it */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "string");
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "find");
    lua_setfield(L, LUA_REGISTRYINDEX, FIND_KEY);
    lua_pop(L, 2);
    lua_createtable(L, 0, 2);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, serial_open_l);
    lua_setfield(L, -2, "open");
    lua_setfield(L, -2, "serial");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, tcp_connect_l);
    lua_setfield(L, -2, "connect");
    lua_setfield(L, -2, "tcp");
    return 1;
}
