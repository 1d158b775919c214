/* hplua.pq: the few libpq calls the factory uploader (lua/upload.lua) and the hub need.
 *
 *   local conn, err, code = pq.connect(conninfo, [{ connect_timeout = S, application_name = NAME }])
 *   conn:exec(sql, ...)   -> result | nil, message, sqlstate   (parameters $1.. : nil is NULL)
 *   conn:copy(sql, data)  -> rows copied | nil, message, sqlstate (COPY ... FROM STDIN; data: string or list)
 *   conn:transaction_status() -> "idle" | "active" | "intrans" | "inerror" | "unknown"
 *   conn:close()          pq.available() -> true | nil, message
 *
 * A result is a list of rows (tables keyed by column name; NULL columns are absent;
 * bool, integer and floating-point columns become Lua values, the rest strings), with
 * .columns (names) and .affected (rows a command changed).
 *
 * libpq (and the TLS, Kerberos and LDAP libraries it links) is loaded on first use, as
 * host/http.c does for libmicrohttpd: a plain `hplua` run starts without paying for it.
 * Failures of the world return nil, message, code: the SQLSTATE when the server gave one,
 * "connect" when no connection could be made, "closed" when the connection broke. */
#include "host.h"

#include <dlfcn.h>
#include <lauxlib.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN_MT "hplua.pq.conn"
#define MAX_PARAMS 65535

#define PQ_FUNCTIONS(X)                                                                                               \
    X(PQconnectdbParams) X(PQstatus) X(PQerrorMessage) X(PQfinish) X(PQexecParams) X(PQresultStatus)                 \
    X(PQresultErrorMessage) X(PQresultErrorField) X(PQntuples) X(PQnfields) X(PQfname) X(PQftype) X(PQgetisnull)     \
    X(PQgetvalue) X(PQgetlength) X(PQclear) X(PQputCopyData) X(PQputCopyEnd) X(PQgetResult) X(PQcmdTuples)           \
    X(PQtransactionStatus) X(PQsetNoticeProcessor) X(PQserverVersion)

static struct {
#define FIELD(name) __typeof__(&name) name;
    PQ_FUNCTIONS(FIELD)
#undef FIELD
} pq;

static char load_error[256];

static int pq_load(void)
{
    static void *lib;
    if (lib)
        return 0;
    void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libpq.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "cannot load libpq (install libpq5): %s", dlerror());
        return -1;
    }
#define LOAD(name)                                                                                                    \
    if (!(*(void **)&pq.name = dlsym(h, #name))) {                                                                    \
        snprintf(load_error, sizeof load_error, "libpq lacks %s", #name);                                             \
        dlclose(h);                                                                                                   \
        return -1;                                                                                                    \
    }
    PQ_FUNCTIONS(LOAD)
#undef LOAD
    lib = h;
    return 0;
}

typedef struct {
    PGconn *conn; /* NULL when closed */
} lconn;

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "relation already exists, skipping" and the like: not for the console */
}

/* The connection's message without libpq's trailing newline, pushed. */
static const char *push_message(lua_State *L, const char *msg)
{
    size_t len = msg ? strlen(msg) : 0;
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    if (!len)
        return lua_pushliteral(L, "unknown error");
    return lua_pushlstring(L, msg, len);
}

static lconn *check_conn(lua_State *L)
{
    lconn *c = luaL_checkudata(L, 1, CONN_MT);
    if (!c->conn)
        luaL_error(L, "pq: the connection is closed");
    return c;
}

static int l_available(lua_State *L)
{
    if (pq_load() != 0) {
        lua_pushnil(L);
        lua_pushstring(L, load_error);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* connect(conninfo, [opts]) -> conn | nil, message, "connect" */
static int l_connect(lua_State *L)
{
    const char *info = luaL_checkstring(L, 1);
    char timeout[32] = "10";
    const char *app = "hplua";
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "connect_timeout");
        if (!lua_isnil(L, -1)) {
            lua_Integer t = luaL_checkinteger(L, -1);
            luaL_argcheck(L, t >= 1 && t <= 3600, 2, "connect_timeout must be 1..3600 seconds");
            snprintf(timeout, sizeof timeout, "%lld", (long long)t);
        }
        lua_getfield(L, 2, "application_name");
        if (!lua_isnil(L, -1))
            app = luaL_checkstring(L, -1);
    }
    lconn *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->conn = NULL; /* born closed */
    luaL_setmetatable(L, CONN_MT);
    if (pq_load() != 0) {
        lua_pushnil(L);
        lua_pushstring(L, load_error);
        lua_pushliteral(L, "connect");
        return 3;
    }
    /* defaults first: what the URL (expanded from dbname) says wins */
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *values[] = {timeout, app, info, NULL};
    PGconn *conn = pq.PQconnectdbParams(keys, values, 1);
    if (!conn) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory");
        lua_pushliteral(L, "connect");
        return 3;
    }
    if (pq.PQstatus(conn) != CONNECTION_OK) {
        lua_pushnil(L);
        push_message(L, pq.PQerrorMessage(conn));
        lua_pushliteral(L, "connect");
        pq.PQfinish(conn);
        return 3;
    }
    pq.PQsetNoticeProcessor(conn, quiet_notices, NULL);
    c->conn = conn;
    return 1; /* the userdata, on top */
}

/* nil, message, code for a failed result (cleared here). */
static int push_result_failure(lua_State *L, lconn *c, PGresult *res)
{
    const char *state = res ? pq.PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    lua_pushnil(L);
    push_message(L, res ? pq.PQresultErrorMessage(res) : pq.PQerrorMessage(c->conn));
    if (state && *state)
        lua_pushstring(L, state);
    else if (pq.PQstatus(c->conn) != CONNECTION_OK)
        lua_pushliteral(L, "closed");
    else
        lua_pushliteral(L, "error");
    if (res)
        pq.PQclear(res);
    return 3;
}

static void push_value(lua_State *L, PGresult *res, int row, int col)
{
    const char *v = pq.PQgetvalue(res, row, col);
    size_t len = (size_t)pq.PQgetlength(res, row, col);
    switch (pq.PQftype(res, col)) {
    case 16: /* bool */
        lua_pushboolean(L, v[0] == 't');
        return;
    case 20: case 21: case 23: /* int8, int2, int4 */
    case 700: case 701: case 1700: /* float4, float8, numeric */
        if (lua_stringtonumber(L, v) == len + 1)
            return;
        break;
    default:
        break;
    }
    lua_pushlstring(L, v, len);
}

/* The rows of a tuples result as a Lua list (the result is cleared by the caller). */
static void push_rows(lua_State *L, PGresult *res)
{
    int rows = pq.PQntuples(res), cols = pq.PQnfields(res);
    lua_createtable(L, rows, 2);
    lua_createtable(L, cols, 0);
    for (int j = 0; j < cols; j++) {
        lua_pushstring(L, pq.PQfname(res, j));
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "columns");
    for (int i = 0; i < rows; i++) {
        lua_createtable(L, 0, cols);
        for (int j = 0; j < cols; j++) {
            if (pq.PQgetisnull(res, i, j))
                continue;
            push_value(L, res, i, j);
            lua_setfield(L, -2, pq.PQfname(res, j));
        }
        lua_rawseti(L, -2, i + 1);
    }
}

/* exec(sql, ...) -> result | nil, message, code */
static int c_exec(lua_State *L)
{
    lconn *c = check_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    int n = lua_gettop(L) - 2;
    luaL_argcheck(L, n <= MAX_PARAMS, 3, "too many parameters");
    /* the texts live on the Lua stack (and in a userdata array) while libpq reads them */
    const char **values = n ? lua_newuserdatauv(L, (size_t)n * sizeof *values, 0) : NULL;
    for (int i = 0; i < n; i++) {
        int idx = 3 + i;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            values[i] = NULL;
            break;
        case LUA_TBOOLEAN:
            values[i] = lua_toboolean(L, idx) ? "t" : "f";
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
            } else {
                char buf[64];
                double d = (double)lua_tonumber(L, idx);
                if (d != d)
                    snprintf(buf, sizeof buf, "NaN");
                else if (d == 1.0 / 0.0 || d == -1.0 / 0.0)
                    snprintf(buf, sizeof buf, "%sInfinity", d < 0 ? "-" : "");
                else
                    snprintf(buf, sizeof buf, "%.17g", d);
                lua_pushstring(L, buf);
            }
            lua_replace(L, idx); /* the text stays referenced from the stack */
            values[i] = lua_tostring(L, idx);
            break;
        case LUA_TSTRING:
            values[i] = lua_tostring(L, idx);
            break;
        default:
            return luaL_argerror(L, idx, lua_pushfstring(L, "a parameter cannot be a %s", luaL_typename(L, idx)));
        }
    }
    PGresult *res = pq.PQexecParams(c->conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = res ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return push_result_failure(L, c, res);
    push_rows(L, res);
    const char *affected = pq.PQcmdTuples(res);
    lua_pushinteger(L, affected && *affected ? strtoll(affected, NULL, 10) : 0);
    lua_setfield(L, -2, "affected");
    pq.PQclear(res);
    return 1;
}

/* Sends one piece of COPY data; 0 on success. */
static int copy_piece(lconn *c, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        if (pq.PQputCopyData(c->conn, data, chunk) != 1)
            return -1;
        data += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

/* copy(sql, data) -> rows | nil, message, code. sql is a COPY ... FROM STDIN; data a
 * string or a list of strings in the COPY format the statement names. */
static int c_copy(lua_State *L)
{
    lconn *c = check_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    int is_list = lua_istable(L, 3);
    if (!is_list)
        luaL_checkstring(L, 3);
    PGresult *res = pq.PQexecParams(c->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (!res || pq.PQresultStatus(res) != PGRES_COPY_IN)
        return push_result_failure(L, c, res);
    pq.PQclear(res);
    int failed = 0;
    if (is_list) {
        lua_Integer n = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= n && !failed; i++) {
            size_t len;
            lua_rawgeti(L, 3, i);
            const char *s = lua_tolstring(L, -1, &len);
            failed = s ? copy_piece(c, s, len) : -2;
            lua_pop(L, 1);
        }
    } else {
        size_t len;
        const char *s = lua_tolstring(L, 3, &len);
        failed = copy_piece(c, s, len);
    }
    /* a bad piece aborts the COPY (the server rolls the statement back) */
    pq.PQputCopyEnd(c->conn, failed == -2 ? "hplua: a COPY piece is not a string" : NULL);
    res = pq.PQgetResult(c->conn);
    ExecStatusType st = res ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR;
    /* drain: libpq ends every command with a NULL result */
    PGresult *extra;
    while ((extra = pq.PQgetResult(c->conn)) != NULL)
        pq.PQclear(extra);
    if (st != PGRES_COMMAND_OK)
        return push_result_failure(L, c, res);
    const char *affected = pq.PQcmdTuples(res);
    lua_pushinteger(L, affected && *affected ? strtoll(affected, NULL, 10) : 0);
    pq.PQclear(res);
    return 1;
}

static int c_transaction_status(lua_State *L)
{
    lconn *c = check_conn(L);
    static const char *const names[] = {"idle", "active", "intrans", "inerror", "unknown"};
    PGTransactionStatusType t = pq.PQtransactionStatus(c->conn);
    lua_pushstring(L, (unsigned)t < 5 ? names[t] : "unknown");
    return 1;
}

static int c_server_version(lua_State *L)
{
    lua_pushinteger(L, pq.PQserverVersion(check_conn(L)->conn));
    return 1;
}

static int c_close(lua_State *L)
{
    lconn *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->conn) {
        pq.PQfinish(c->conn);
        c->conn = NULL;
    }
    return 0;
}

static int c_tostring(lua_State *L)
{
    lconn *c = luaL_checkudata(L, 1, CONN_MT);
    lua_pushstring(L, c->conn ? "pq connection" : "pq connection (closed)");
    return 1;
}

int luaopen_hplua_pq(lua_State *L)
{
    static const luaL_Reg methods[] = {{"exec", c_exec},
                                       {"copy", c_copy},
                                       {"transaction_status", c_transaction_status},
                                       {"server_version", c_server_version},
                                       {"close", c_close},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", c_close}, {"__close", c_close}, {"__tostring", c_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"connect", l_connect}, {"available", l_available}, {NULL, NULL}};
    luaL_newmetatable(L, CONN_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
