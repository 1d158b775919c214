/* hplua.sqlite: a small binding of the system SQLite (libsqlite3).
 *
 *   local db, err, code = sqlite.open(path, [flags], [busy_ms])
 *   db:exec(sql)  db:prepare(sql)  db:last_insert_rowid()  db:changes()  db:errmsg()
 *   st:bind(...) | st:bind{name = v}   st:step()   st:reset()   st:exec(...)   st:first(...)
 *   for row in st:rows(...) do ... end  st:copy_text(...)  st:finalize()  db:close()
 *
 * Failures of the world (busy, full, corrupt, not a database, read-only...) return
 * nil, message, code with the SQLite name of the primary result code ("SQLITE_BUSY").
 * Misuse (a closed handle, a value that cannot be bound) raises. Strings are bound as
 * TEXT with their exact length (NUL bytes and any byte sequence round-trip); TEXT and
 * BLOB columns come back as Lua strings of their exact length. st:exec binds text
 * passed by position where it lies (SQLite does not copy a report of hundreds of KiB)
 * and clears every binding before it returns. */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DB_MT "hplua.sqlite.db"
#define STMT_MT "hplua.sqlite.stmt"
#define DEFAULT_BUSY_MS 5000

typedef struct {
    sqlite3 *db; /* NULL when closed (or not yet open) */
} ldb;

typedef struct {
    sqlite3_stmt *stmt; /* NULL when finalized */
    ldb *owner;         /* kept alive by the statement's user value */
} lstmt;

static const char *code_name(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return "SQLITE_OK";
    case SQLITE_ERROR: return "SQLITE_ERROR";
    case SQLITE_INTERNAL: return "SQLITE_INTERNAL";
    case SQLITE_PERM: return "SQLITE_PERM";
    case SQLITE_ABORT: return "SQLITE_ABORT";
    case SQLITE_BUSY: return "SQLITE_BUSY";
    case SQLITE_LOCKED: return "SQLITE_LOCKED";
    case SQLITE_NOMEM: return "SQLITE_NOMEM";
    case SQLITE_READONLY: return "SQLITE_READONLY";
    case SQLITE_INTERRUPT: return "SQLITE_INTERRUPT";
    case SQLITE_IOERR: return "SQLITE_IOERR";
    case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
    case SQLITE_NOTFOUND: return "SQLITE_NOTFOUND";
    case SQLITE_FULL: return "SQLITE_FULL";
    case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
    case SQLITE_PROTOCOL: return "SQLITE_PROTOCOL";
    case SQLITE_EMPTY: return "SQLITE_EMPTY";
    case SQLITE_SCHEMA: return "SQLITE_SCHEMA";
    case SQLITE_TOOBIG: return "SQLITE_TOOBIG";
    case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
    case SQLITE_MISMATCH: return "SQLITE_MISMATCH";
    case SQLITE_MISUSE: return "SQLITE_MISUSE";
    case SQLITE_NOLFS: return "SQLITE_NOLFS";
    case SQLITE_AUTH: return "SQLITE_AUTH";
    case SQLITE_FORMAT: return "SQLITE_FORMAT";
    case SQLITE_RANGE: return "SQLITE_RANGE";
    case SQLITE_NOTADB: return "SQLITE_NOTADB";
    case SQLITE_NOTICE: return "SQLITE_NOTICE";
    case SQLITE_WARNING: return "SQLITE_WARNING";
    case SQLITE_ROW: return "SQLITE_ROW";
    case SQLITE_DONE: return "SQLITE_DONE";
    default: return "SQLITE_ERROR";
    }
}

/* nil, message, code */
static int push_failure_text(lua_State *L, const char *message, int rc)
{
    lua_pushnil(L);
    lua_pushstring(L, message);
    lua_pushstring(L, code_name(rc));
    return 3;
}

static const char *failure_text(sqlite3 *db, int rc) { return db ? sqlite3_errmsg(db) : sqlite3_errstr(rc); }

/* nil, message, code for a failed call on db (the message is the connection's). */
static int push_failure(lua_State *L, sqlite3 *db, int rc) { return push_failure_text(L, failure_text(db, rc), rc); }

static ldb *check_db(lua_State *L, int idx)
{
    ldb *d = luaL_checkudata(L, idx, DB_MT);
    if (!d->db)
        luaL_error(L, "sqlite: the database is closed");
    return d;
}

static lstmt *check_stmt(lua_State *L, int idx)
{
    lstmt *s = luaL_checkudata(L, idx, STMT_MT);
    if (!s->stmt)
        luaL_error(L, "sqlite: the statement is finalized");
    if (!s->owner->db)
        luaL_error(L, "sqlite: the statement's database is closed");
    return s;
}

/* Creates the missing parent folders of path with mode 0700. */
static int make_parents(const char *path)
{
    size_t len = strlen(path);
    char *p = malloc(len + 1);
    if (!p)
        return ENOMEM;
    memcpy(p, path, len + 1);
    int err = 0;
    for (char *q = strchr(p + 1, '/'); q && !err; q = strchr(q + 1, '/')) {
        *q = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            err = errno;
        *q = '/';
    }
    free(p);
    return err;
}

/* file:PATH?immutable=1 with PATH percent-encoded, as a Lua string on the stack. */
static const char *push_immutable_uri(lua_State *L, const char *path)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("/-._~", *p))
            luaL_addchar(&b, (char)*p);
        else {
            char hex[4];
            snprintf(hex, sizeof hex, "%%%02X", *p);
            luaL_addstring(&b, hex);
        }
    }
    luaL_addstring(&b, "?immutable=1");
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* open(path, [flags], [busy_ms]) -> db | nil, message, code
 * flags: "r" read-only, "w" read-write, "c" create (a new file gets mode 0600),
 * "p" create missing parent folders (mode 0700), "i" immutable: read-only without
 * locks or a -shm file, for a file nobody can change (read-only media). Default "rwc". */
static int sqlite_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *flags = luaL_optstring(L, 2, "rwc");
    lua_Integer busy = luaL_optinteger(L, 3, DEFAULT_BUSY_MS);
    int write = strchr(flags, 'w') != NULL, create = strchr(flags, 'c') != NULL;
    int immutable = strchr(flags, 'i') != NULL;
    luaL_argcheck(L, strspn(flags, "rwcpi") == strlen(flags), 2, "flags are letters of \"rwcpi\"");
    luaL_argcheck(L, !create || write, 2, "\"c\" needs \"w\"");
    luaL_argcheck(L, !immutable || !write, 2, "\"i\" is read-only");
    luaL_argcheck(L, busy >= 0 && busy <= 0x7fffffff, 3, "busy timeout out of range");
    ldb *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->db = NULL; /* born closed: an error below leaves a safe object */
    luaL_setmetatable(L, DB_MT);
    int ud = lua_gettop(L);
    int ordinary = *path && strcmp(path, ":memory:") != 0;
    if (ordinary && strchr(flags, 'p')) {
        int err = make_parents(path);
        if (err) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot create the folders of %s: %s", path, strerror(err));
            lua_pushstring(L, code_name(SQLITE_CANTOPEN));
            return 3;
        }
    }
    if (ordinary && create) {
        /* SQLite would create the file 0644; a history holds production data. Its
         * -wal and -shm files take the database file's mode. */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    int oflags = (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | (create ? SQLITE_OPEN_CREATE : 0) |
                 SQLITE_OPEN_NOMUTEX;
    if (immutable) {
        oflags |= SQLITE_OPEN_URI;
        path = push_immutable_uri(L, path);
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, oflags, NULL);
    if (rc != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushstring(L, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        lua_pushstring(L, code_name(rc));
        sqlite3_close(db);
        return 3;
    }
    d->db = db;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, (int)busy);
    lua_pushvalue(L, ud);
    return 1;
}

static int db_close(lua_State *L)
{
    ldb *d = luaL_checkudata(L, 1, DB_MT);
    if (d->db) {
        /* statements still open keep a zombie connection until they are finalized */
        sqlite3_close_v2(d->db);
        d->db = NULL;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int db_exec(lua_State *L)
{
    ldb *d = check_db(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return push_failure(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int db_prepare(lua_State *L)
{
    ldb *d = check_db(L, 1);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    lstmt *s = lua_newuserdatauv(L, sizeof *s, 1);
    s->stmt = NULL;
    s->owner = d;
    luaL_setmetatable(L, STMT_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the statement keeps its database alive */
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(d->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &s->stmt, &tail);
    if (rc != SQLITE_OK)
        return push_failure(L, d->db, rc);
    if (!s->stmt)
        return luaL_argerror(L, 2, "no SQL statement");
    while (tail && *tail && strchr(" \t\r\n;", *tail))
        tail++;
    if (tail && *tail) {
        sqlite3_finalize(s->stmt);
        s->stmt = NULL;
        return luaL_argerror(L, 2, "more than one statement (use db:exec for several)");
    }
    return 1;
}

static int db_last_insert_rowid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(check_db(L, 1)->db));
    return 1;
}

static int db_changes(lua_State *L)
{
    lua_pushinteger(L, sqlite3_changes(check_db(L, 1)->db));
    return 1;
}

static int db_errmsg(lua_State *L)
{
    sqlite3 *db = check_db(L, 1)->db;
    lua_pushstring(L, sqlite3_errmsg(db));
    lua_pushstring(L, code_name(sqlite3_extended_errcode(db)));
    return 2;
}

static int db_busy_timeout(lua_State *L)
{
    ldb *d = check_db(L, 1);
    lua_Integer ms = luaL_checkinteger(L, 2);
    luaL_argcheck(L, ms >= 0 && ms <= 0x7fffffff, 2, "out of range");
    sqlite3_busy_timeout(d->db, (int)ms);
    return 0;
}

/* readonly() -> true when the file could only be opened for reading */
static int db_readonly(lua_State *L)
{
    lua_pushboolean(L, sqlite3_db_readonly(check_db(L, 1)->db, "main") == 1);
    return 1;
}

/* keep_log_on_close(): closing this connection, even the last one, leaves the
 * write-ahead log as it is (no checkpoint, no fsync): the next writer's commits
 * checkpoint it (wal_autocheckpoint). */
static int db_keep_log_on_close(lua_State *L)
{
    sqlite3_db_config(check_db(L, 1)->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    return 0;
}

static int db_in_transaction(lua_State *L)
{
    lua_pushboolean(L, !sqlite3_get_autocommit(check_db(L, 1)->db));
    return 1;
}

static int db_tostring(lua_State *L)
{
    ldb *d = luaL_checkudata(L, 1, DB_MT);
    if (d->db)
        lua_pushfstring(L, "sqlite database (%s)", sqlite3_db_filename(d->db, "main"));
    else
        lua_pushliteral(L, "sqlite database (closed)");
    return 1;
}

/* ---- statements ---- */

/* still: the text stays where it is until the statement is reset and its bindings
 * cleared (a value on the Lua stack of the call that steps it): SQLite need not
 * copy it (a run's report is hundreds of KiB, and a copy costs fresh pages) */
static void bind_value(lua_State *L, lstmt *s, int param, int idx, int argn, bool still)
{
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE: rc = sqlite3_bind_null(s->stmt, param); break;
    case LUA_TBOOLEAN: rc = sqlite3_bind_int(s->stmt, param, lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            rc = sqlite3_bind_int64(s->stmt, param, (sqlite3_int64)lua_tointeger(L, idx));
        else
            rc = sqlite3_bind_double(s->stmt, param, (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *v = lua_tolstring(L, idx, &len);
        rc = sqlite3_bind_text64(s->stmt, param, v, (sqlite3_uint64)len, still ? SQLITE_STATIC : SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
        break;
    }
    default:
        if (still) /* nothing stays bound to text of a call that ends here */
            sqlite3_clear_bindings(s->stmt);
        luaL_argerror(L, argn, lua_pushfstring(L, "cannot bind a %s (parameter %d)", luaL_typename(L, idx), param));
        return;
    }
    if (rc != SQLITE_OK) {
        if (still)
            sqlite3_clear_bindings(s->stmt);
        luaL_error(L, "sqlite: cannot bind parameter %d: %s", param, sqlite3_errstr(rc));
    }
}

/* Resets the statement and binds args from index first: values by position, or
 * one table by parameter name (":name", "@name", "$name" read t.name; "?N" reads t[N]).
 * still: the caller steps the statement and unbinds it (unbind) before it returns,
 * with nothing in between that may raise, so text passed by position is bound where
 * it is (a table's fields are copied: a field read through __index may be a string
 * nothing else holds). */
static void bind_args(lua_State *L, lstmt *s, int first, bool still)
{
    int n = lua_gettop(L) - first + 1;
    int count = sqlite3_bind_parameter_count(s->stmt);
    sqlite3_reset(s->stmt);
    sqlite3_clear_bindings(s->stmt);
    if (n == 1 && lua_type(L, first) == LUA_TTABLE) {
        for (int i = 1; i <= count; i++) {
            const char *name = sqlite3_bind_parameter_name(s->stmt, i);
            if (name && *name != '?')
                lua_getfield(L, first, name + 1);
            else
                lua_geti(L, first, i);
            bind_value(L, s, i, -1, first, false);
            lua_pop(L, 1);
        }
        return;
    }
    if (n > count)
        luaL_argerror(L, first + count, lua_pushfstring(L, "%d values for %d parameters", n, count));
    for (int i = 0; i < n; i++)
        bind_value(L, s, i + 1, first + i, first + i, still);
}

/* Resets the statement and lets go of text bound where it was (bind_args, still). */
static void unbind(lstmt *s)
{
    sqlite3_reset(s->stmt);
    sqlite3_clear_bindings(s->stmt);
}

static int st_bind(lua_State *L)
{
    bind_args(L, check_stmt(L, 1), 2, false);
    lua_settop(L, 1);
    return 1;
}

/* bind_blob(i, s): binds s as a BLOB rather than TEXT */
static int st_bind_blob(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    int i = (int)luaL_checkinteger(L, 2);
    size_t len;
    const char *v = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, i >= 1 && i <= sqlite3_bind_parameter_count(s->stmt), 2, "no such parameter");
    sqlite3_reset(s->stmt);
    int rc = sqlite3_bind_blob64(s->stmt, i, v, (sqlite3_uint64)len, SQLITE_TRANSIENT);
    if (rc != SQLITE_OK)
        return luaL_error(L, "sqlite: cannot bind parameter %d: %s", i, sqlite3_errstr(rc));
    lua_settop(L, 1);
    return 1;
}

static void push_column(lua_State *L, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, (lua_Number)sqlite3_column_double(st, i)); break;
    case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(st, i);
        lua_pushlstring(L, t ? t : "", (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    case SQLITE_BLOB: {
        const void *b = sqlite3_column_blob(st, i);
        lua_pushlstring(L, b ? b : "", (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    default: lua_pushnil(L);
    }
}

/* The current row as a table keyed by column name (NULL columns are absent). */
static void push_row(lua_State *L, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        push_column(L, st, i);
        lua_setfield(L, -2, sqlite3_column_name(st, i));
    }
}

/* step() -> true (a row) | false (done) | nil, message, code */
static int st_step(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    int rc = sqlite3_step(s->stmt);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        lua_pushboolean(L, rc == SQLITE_ROW);
        return 1;
    }
    if ((rc & 0xff) == SQLITE_MISUSE)
        return luaL_error(L, "sqlite: misuse of a statement: %s", sqlite3_errmsg(s->owner->db));
    push_failure(L, s->owner->db, rc);
    sqlite3_reset(s->stmt);
    return 3;
}

static int st_reset(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    sqlite3_reset(s->stmt);
    lua_settop(L, 1);
    return 1;
}

/* exec(...) -> true | nil, message, code: binds (text passed by position where it
 * is), runs to the end, resets and clears the bindings. Nothing that may raise (an
 * allocation: memory may be capped) comes between the binding and the clearing. */
static int st_exec(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    bind_args(L, s, 2, true);
    int rc;
    while ((rc = sqlite3_step(s->stmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
        char msg[1024]; /* copied: pushing it allocates, and may raise */
        snprintf(msg, sizeof msg, "%s", failure_text(s->owner->db, rc));
        unbind(s);
        return push_failure_text(L, msg, rc);
    }
    unbind(s);
    lua_pushboolean(L, 1);
    return 1;
}

/* first(...) -> row table | false (no row) | nil, message, code; binds (copies) and
 * resets. */
static int st_first(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    bind_args(L, s, 2, false);
    int rc = sqlite3_step(s->stmt);
    if (rc == SQLITE_ROW)
        push_row(L, s->stmt);
    else if (rc == SQLITE_DONE)
        lua_pushboolean(L, 0);
    else {
        push_failure(L, s->owner->db, rc);
        sqlite3_reset(s->stmt);
        return 3;
    }
    sqlite3_reset(s->stmt);
    return 1;
}

static int rows_iter(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    int rc = sqlite3_step(s->stmt);
    if (rc == SQLITE_ROW) {
        push_row(L, s->stmt);
        return 1;
    }
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s->stmt);
        return 0;
    }
    /* a loop has no place for nil, message: the failure is raised */
    lua_pushfstring(L, "sqlite: %s (%s)", sqlite3_errmsg(s->owner->db), code_name(rc));
    sqlite3_reset(s->stmt);
    return lua_error(L);
}

/* rows(...) -> iterator over row tables; binds first when given values. Failures raise. */
static int st_rows(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    if (lua_gettop(L) > 1)
        bind_args(L, s, 2, false);
    else
        sqlite3_reset(s->stmt);
    lua_pushcfunction(L, rows_iter);
    lua_pushvalue(L, 1);
    return 2;
}

/* One value in PostgreSQL's COPY text format: \N for NULL, reals with 17 significant
 * digits (exact), text with backslash escapes (a NUL byte, which PostgreSQL text cannot
 * hold, is dropped). */
static void add_copy_field(luaL_Buffer *b, sqlite3_stmt *st, int i)
{
    char num[64];
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        luaL_addstring(b, "\\N");
        return;
    case SQLITE_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(st, i));
        luaL_addstring(b, num);
        return;
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, i);
        if (d != d)
            luaL_addstring(b, "NaN");
        else if (d > 1.7976931348623157e308 || d < -1.7976931348623157e308)
            luaL_addstring(b, d > 0 ? "Infinity" : "-Infinity");
        else {
            snprintf(num, sizeof num, "%.17g", d);
            luaL_addstring(b, num);
        }
        return;
    }
    default: {
        const unsigned char *t = sqlite3_column_text(st, i);
        int len = sqlite3_column_bytes(st, i);
        for (int k = 0; k < len; k++) {
            unsigned char c = t[k];
            switch (c) {
            case '\\': luaL_addstring(b, "\\\\"); break;
            case '\t': luaL_addstring(b, "\\t"); break;
            case '\n': luaL_addstring(b, "\\n"); break;
            case '\r': luaL_addstring(b, "\\r"); break;
            case 0: break;
            default: luaL_addchar(b, (char)c);
            }
        }
    }
    }
}

/* copy_text(...) -> every row of the result as one string in PostgreSQL's COPY text
 * format (tab between columns, a newline after each row), "" when none | nil, message,
 * code. Binds first when given values; resets. (The factory upload's hot path.) */
static int st_copy_text(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    if (lua_gettop(L) > 1)
        bind_args(L, s, 2, false);
    else
        sqlite3_reset(s->stmt);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int rc, n = sqlite3_column_count(s->stmt);
    while ((rc = sqlite3_step(s->stmt)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            if (i)
                luaL_addchar(&b, '\t');
            add_copy_field(&b, s->stmt, i);
        }
        luaL_addchar(&b, '\n');
    }
    if (rc != SQLITE_DONE) {
        push_failure(L, s->owner->db, rc);
        sqlite3_reset(s->stmt);
        return 3;
    }
    sqlite3_reset(s->stmt);
    luaL_pushresult(&b);
    return 1;
}

/* row() -> the current row (after step() returned true) as a table */
static int st_row(lua_State *L)
{
    push_row(L, check_stmt(L, 1)->stmt);
    return 1;
}

/* get(i) -> value of column i (1-based) of the current row */
static int st_get(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= sqlite3_data_count(s->stmt), 2, "no such column in the current row");
    push_column(L, s->stmt, (int)i - 1);
    return 1;
}

static int st_columns(lua_State *L)
{
    lstmt *s = check_stmt(L, 1);
    int n = sqlite3_column_count(s->stmt);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, sqlite3_column_name(s->stmt, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int st_finalize(lua_State *L)
{
    lstmt *s = luaL_checkudata(L, 1, STMT_MT);
    if (s->stmt) {
        sqlite3_finalize(s->stmt);
        s->stmt = NULL;
    }
    return 0;
}

static int st_tostring(lua_State *L)
{
    lstmt *s = luaL_checkudata(L, 1, STMT_MT);
    if (s->stmt)
        lua_pushfstring(L, "sqlite statement (%s)", sqlite3_sql(s->stmt));
    else
        lua_pushliteral(L, "sqlite statement (finalized)");
    return 1;
}

static int sqlite_version(lua_State *L)
{
    lua_pushstring(L, sqlite3_libversion());
    return 1;
}

int luaopen_hplua_sqlite(lua_State *L)
{
    static const luaL_Reg db_methods[] = {{"exec", db_exec},
                                          {"prepare", db_prepare},
                                          {"last_insert_rowid", db_last_insert_rowid},
                                          {"changes", db_changes},
                                          {"errmsg", db_errmsg},
                                          {"busy_timeout", db_busy_timeout},
                                          {"readonly", db_readonly},
                                          {"in_transaction", db_in_transaction},
                                          {"keep_log_on_close", db_keep_log_on_close},
                                          {"close", db_close},
                                          {NULL, NULL}};
    static const luaL_Reg db_meta[] = {
        {"__gc", db_close}, {"__close", db_close}, {"__tostring", db_tostring}, {NULL, NULL}};
    static const luaL_Reg st_methods[] = {{"bind", st_bind},   {"bind_blob", st_bind_blob}, {"step", st_step},
                                          {"reset", st_reset}, {"exec", st_exec},           {"first", st_first},
                                          {"rows", st_rows},   {"row", st_row},             {"get", st_get},
                                          {"columns", st_columns}, {"finalize", st_finalize}, {"copy_text", st_copy_text}, {NULL, NULL}};
    static const luaL_Reg st_meta[] = {
        {"__gc", st_finalize}, {"__close", st_finalize}, {"__tostring", st_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"open", sqlite_open}, {"version", sqlite_version}, {NULL, NULL}};
    luaL_newmetatable(L, DB_MT);
    luaL_setfuncs(L, db_meta, 0);
    luaL_newlib(L, db_methods);
    lua_setfield(L, -2, "__index");
    luaL_newmetatable(L, STMT_MT);
    luaL_setfuncs(L, st_meta, 0);
    luaL_newlib(L, st_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 2);
    luaL_newlib(L, fns);
    return 1;
}
