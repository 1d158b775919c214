/* hplua.json: JSON through cJSON (encode, decode) and atomic file writes. */
#include "host.h"
#include "jenc.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_MT "hplua.json.array"
#define MAX_DEPTH 200

/* Copies s to a new buffer, replacing invalid UTF-8 with U+FFFD. */
static char *utf8_repair(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1), *q = out;
    if (!out)
        return NULL;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = n > 0 && i + n <= len && c != 0;
        unsigned cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; ok && k < n; k++) {
            unsigned char cc = (unsigned char)s[i + k];
            ok = (cc & 0xc0) == 0x80;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (ok && ((n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                   (n == 4 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = 0;
        if (ok) {
            memcpy(q, s + i, n);
            q += n;
            i += n;
        } else {
            memcpy(q, "\xef\xbf\xbd", 3);
            q += 3;
            i += 1;
        }
    }
    *q = 0;
    return out;
}

static cJSON *make_string(const char *s, size_t len)
{
    char *fixed = utf8_repair(s, len);
    if (!fixed)
        return NULL;
    cJSON *j = cJSON_CreateString(fixed);
    free(fixed);
    return j;
}

static int is_array(lua_State *L, int idx, lua_Integer *n)
{
    if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
        int arr = strcmp(lua_tostring(L, -1), ARRAY_MT) == 0;
        lua_pop(L, 1);
        if (arr) {
            *n = (lua_Integer)lua_rawlen(L, idx);
            return 1;
        }
    }
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max)
            max = k;
        count++;
    }
    *n = max;
    return count > 0 && count == max;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Object keys in sorted order, so reports are stable from run to run. */
static void sort_object(cJSON *obj)
{
    size_t n = 0;
    for (cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return;
    cJSON **items = malloc(n * sizeof *items);
    if (!items)
        return;
    n = 0;
    for (cJSON *c = obj->child; c; c = c->next)
        items[n++] = c;
    qsort(items, n, sizeof *items, cmp_keys);
    for (size_t i = 0; i < n; i++) {
        items[i]->prev = i ? items[i - 1] : items[n - 1]; /* cJSON: child->prev is the last item */
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
    }
    obj->child = items[0];
    free(items);
}

/* Converts the value at idx; on failure returns NULL with a message pushed. */
static cJSON *to_json(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return cJSON_CreateNull();
    case LUA_TBOOLEAN:
        return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        return isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull();
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return make_string(s, len);
    }
    case LUA_TTABLE: {
        if (depth > MAX_DEPTH) {
            lua_pushliteral(L, "table nested too deeply (or a cycle)");
            return NULL;
        }
        lua_Integer n;
        luaL_checkstack(L, 4, "json");
        if (is_array(L, idx, &n)) {
            cJSON *arr = cJSON_CreateArray();
            for (lua_Integer i = 1; arr && i <= n; i++) {
                lua_rawgeti(L, idx, i);
                cJSON *item = to_json(L, -1, depth + 1);
                if (!item) {
                    cJSON_Delete(arr);
                    lua_remove(L, -2);
                    return NULL;
                }
                lua_pop(L, 1);
                cJSON_AddItemToArray(arr, item);
            }
            return arr;
        }
        cJSON *obj = cJSON_CreateObject();
        lua_pushnil(L);
        while (obj && lua_next(L, idx)) {
            lua_pushvalue(L, -2);
            const char *key = luaL_tolstring(L, -1, NULL); /* numbers and booleans as text */
            char *fixed = utf8_repair(key, strlen(key));
            cJSON *item = to_json(L, -3, depth + 1);
            if (!item || !fixed) {
                free(fixed);
                cJSON_Delete(obj);
                if (!item) {
                    lua_replace(L, -5);
                    lua_pop(L, 3);
                } else {
                    lua_pop(L, 4);
                    lua_pushliteral(L, "out of memory");
                }
                return NULL;
            }
            cJSON_AddItemToObject(obj, fixed, item);
            free(fixed);
            lua_pop(L, 3);
        }
        if (obj)
            sort_object(obj);
        return obj;
    }
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx))
            return cJSON_CreateNull(); /* json.null */
        /* fall through */
    default:
        lua_pushfstring(L, "cannot encode a %s value", luaL_typename(L, idx));
        return NULL;
    }
}

/* encode(value, [pretty], [max_bytes]) -> string | nil, err. The compact form is
 * written directly (jenc.c); pretty printing goes through cJSON. */
static int json_encode(lua_State *L)
{
    if (!lua_toboolean(L, 2)) {
        lua_Integer max = luaL_optinteger(L, 3, 0);
        luaL_argcheck(L, max >= 0, 3, "max_bytes must not be negative");
        if (jenc_encode(L, 1, (size_t)max, ARRAY_MT))
            return 1;
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_settop(L, 2);
    cJSON *j = to_json(L, 1, 0);
    if (!j) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    char *s = lua_toboolean(L, 2) ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return luaL_error(L, "json: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static void from_json(lua_State *L, const cJSON *j, int depth)
{
    luaL_checkstack(L, 3, "json");
    if (cJSON_IsNull(j) || depth > MAX_DEPTH)
        lua_pushnil(L);
    else if (cJSON_IsBool(j))
        lua_pushboolean(L, cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == (double)(lua_Integer)d && fabs(d) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(j))
        lua_pushstring(L, j->valuestring);
    else if (cJSON_IsArray(j)) {
        lua_newtable(L);
        luaL_setmetatable(L, ARRAY_MT);
        lua_Integer i = 0;
        for (const cJSON *c = j->child; c; c = c->next) {
            from_json(L, c, depth + 1);
            lua_rawseti(L, -2, ++i);
        }
    } else {
        lua_newtable(L);
        for (const cJSON *c = j->child; c; c = c->next) {
            from_json(L, c, depth + 1);
            lua_setfield(L, -2, c->string);
        }
    }
}

/* decode(text) -> value | nil, err */
static int json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *end = NULL;
    if (strlen(s) != len) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid JSON: NUL byte at byte %d", (int)strlen(s) + 1);
        return 2;
    }
    cJSON *j = cJSON_ParseWithOpts(s, &end, 1);
    if (!j) {
        size_t off = end && end >= s ? (size_t)(end - s) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off && i < len; i++)
            line += s[i] == '\n';
        lua_pushnil(L);
        lua_pushfstring(L, "invalid JSON at line %d (byte %d)", (int)line, (int)off + 1);
        return 2;
    }
    from_json(L, j, 0);
    cJSON_Delete(j);
    return 1;
}

/* write_atomic(path, text) -> true | nil, err: temp file beside it, fsync, rename. */
static int json_write_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    const char *tmp = lua_pushfstring(L, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot write %s: %s", path, strerror(errno));
        return 2;
    }
    size_t off = 0;
    int err = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        off += (size_t)n;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot write %s: %s", path, strerror(err));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* array(t) -> t, marked to encode as a JSON array even when empty */
static int json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, ARRAY_MT);
    return 1;
}

static int json_utf8_repair(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (jenc_valid_utf8(s, len)) { /* the common case: nothing to repair, no copy */
        lua_settop(L, 1);
        return 1;
    }
    char *fixed = utf8_repair(s, len);
    if (!fixed)
        return luaL_error(L, "out of memory");
    lua_pushstring(L, fixed);
    free(fixed);
    return 1;
}

int luaopen_hplua_json(lua_State *L)
{
    static const luaL_Reg fns[] = {{"encode", json_encode},
                                   {"decode", json_decode},
                                   {"write_atomic", json_write_atomic},
                                   {"array", json_array},
                                   {"utf8_repair", json_utf8_repair},
                                   {NULL, NULL}};
    luaL_newmetatable(L, ARRAY_MT);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
