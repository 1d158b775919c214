/* A direct JSON encoder for Lua values: events, reports and history records are
 * written straight into one growing buffer (no intermediate tree), with sorted
 * object keys, invalid UTF-8 and NUL repaired to U+FFFD, non-finite numbers as
 * null, and an optional budget on the output size (a shared sub-table expands
 * each time it is referenced). */
#include "jenc.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200
#define MAX_KEYS_ON_STACK 32

typedef struct {
    char *data;
    size_t len, cap, max; /* max: 0 = no budget */
    const char *array_mt; /* __name of tables that encode as arrays */
} jbuf;

static void grow(lua_State *L, jbuf *b, size_t need)
{
    if (b->max && b->len + need > b->max)
        luaL_error(L, "the JSON text would exceed %d MB", (int)(b->max >> 20));
    if (b->len + need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need)
        cap *= 2;
    char *nd = realloc(b->data, cap);
    if (!nd)
        luaL_error(L, "not enough memory");
    b->data = nd;
    b->cap = cap;
}

static void put(lua_State *L, jbuf *b, const char *s, size_t n)
{
    grow(L, b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

#define PUTLIT(L, b, s) put((L), (b), (s), sizeof(s) - 1)

/* Length of the valid UTF-8 sequence at s (0: invalid); NUL counts as invalid. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!n || n > left || c == 0)
        return 0;
    unsigned cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* plain[c]: byte c goes into a JSON string as it is (printable ASCII but " and \\). */
static unsigned char plain[256];

static void init_plain(void)
{
    for (int c = 0x20; c < 0x80; c++)
        plain[c] = c != '"' && c != '\\';
}

int jenc_valid_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    if (!plain['a'])
        init_plain();
    for (size_t i = 0; i < len;) {
        if (plain[s[i]] || s[i] == '"' || s[i] == '\\' || (s[i] > 0 && s[i] < 0x20)) {
            i++;
            continue;
        }
        size_t n = utf8_len(s + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

static void put_string(lua_State *L, jbuf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    grow(L, b, len + 2);
    b->data[b->len++] = '"';
    size_t i = 0;
    while (i < len) {
        size_t run = i; /* a run of plain ASCII copies at once */
        while (run < len && plain[s[run]])
            run++;
        if (run > i) {
            put(L, b, str + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(L, b, esc, 2);
            i++;
        } else if (c > 0 && c < 0x20) {
            char esc[8];
            int n = c == '\n' ? snprintf(esc, sizeof esc, "\\n") : c == '\t' ? snprintf(esc, sizeof esc, "\\t")
                    : c == '\r' ? snprintf(esc, sizeof esc, "\\r") : c == '\b' ? snprintf(esc, sizeof esc, "\\b")
                    : c == '\f' ? snprintf(esc, sizeof esc, "\\f") : snprintf(esc, sizeof esc, "\\u%04x", c);
            put(L, b, esc, (size_t)n);
            i++;
        } else {
            size_t n = utf8_len(s + i, len - i);
            if (n) {
                put(L, b, str + i, n);
                i += n;
            } else {
                PUTLIT(L, b, "\xef\xbf\xbd");
                i++;
            }
        }
    }
    PUTLIT(L, b, "\"");
}

static void put_number(lua_State *L, jbuf *b, int idx)
{
    char num[40];
    int n;
    if (lua_isinteger(L, idx)) {
        lua_Integer v = lua_tointeger(L, idx);
        if (v >= 0 && v < 1000000000) { /* the common case: counts, lines, pids */
            char *e = num + sizeof num, *p = e;
            do
                *--p = (char)('0' + v % 10);
            while ((v /= 10) > 0);
            put(L, b, p, (size_t)(e - p));
            return;
        }
        n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)v);
    } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) {
            PUTLIT(L, b, "null");
            return;
        }
        /* Durations are kept to the microsecond: k / 1e6 prints as k with six decimals
         * (trailing zeros dropped) and reads back as the same double. */
        if (fabs(d) < 1e9) {
            double scaled = d * 1e6;
            long long k = llround(scaled);
            if ((double)k / 1e6 == d) {
                char *p = num;
                unsigned long long u = (unsigned long long)(k < 0 ? -k : k);
                if (k < 0)
                    *p++ = '-';
                unsigned long long ip = u / 1000000, fp = u % 1000000;
                char tmp[24];
                int tn = 0;
                do
                    tmp[tn++] = (char)('0' + ip % 10);
                while ((ip /= 10) > 0);
                while (tn)
                    *p++ = tmp[--tn];
                if (fp) {
                    *p++ = '.';
                    char frac[6];
                    for (int i = 5; i >= 0; i--) {
                        frac[i] = (char)('0' + fp % 10);
                        fp /= 10;
                    }
                    int last = 5;
                    while (frac[last] == '0')
                        last--;
                    for (int i = 0; i <= last; i++)
                        *p++ = frac[i];
                }
                put(L, b, num, (size_t)(p - num));
                return;
            }
        }
        /* the shortest of %.15g / %.17g that reads back as the same double */
        n = snprintf(num, sizeof num, "%.15g", d);
        if (strtod(num, NULL) != d)
            n = snprintf(num, sizeof num, "%.17g", d);
    }
    put(L, b, num, (size_t)n);
}

static void encode(lua_State *L, jbuf *b, int idx, int depth);

/* Arrays: tables marked with the array metatable, or whose keys are exactly 1..n. */
static int array_length(lua_State *L, jbuf *b, int idx, lua_Integer *n)
{
    if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
        int arr = b->array_mt && lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), b->array_mt) == 0;
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

typedef struct {
    const char *s;
    size_t len;
} key;

static int cmp_key(const void *a, const void *b)
{
    const key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The object's keys as strings, sorted; numbers and booleans become text. Pushes a
 * holder table (anchoring converted keys) and, past MAX_KEYS_ON_STACK keys, the
 * key array as userdata, so that an error anywhere leaks nothing. */
static key *object_keys(lua_State *L, int idx, size_t *count, key *stack_keys)
{
    lua_newtable(L);
    int holder = lua_gettop(L);
    lua_pushnil(L); /* slot for the userdata key array */
    int store = lua_gettop(L);
    size_t n = 0, cap = MAX_KEYS_ON_STACK;
    key *keys = stack_keys;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int kt = lua_type(L, -1);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN)
            luaL_error(L, "cannot encode a table key of type %s", luaL_typename(L, -1));
        if (n == cap) {
            key *nk = lua_newuserdatauv(L, cap * 2 * sizeof *nk, 0);
            memcpy(nk, keys, n * sizeof *nk);
            lua_replace(L, store);
            keys = nk;
            cap *= 2;
        }
        if (kt == LUA_TSTRING) {
            keys[n].s = lua_tolstring(L, -1, &keys[n].len); /* anchored by the table itself */
        } else {
            if (kt == LUA_TBOOLEAN) {
                lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
            } else {
                lua_pushvalue(L, -1);
                lua_tostring(L, -1); /* converts the copy, never lua_next's key */
            }
            keys[n].s = lua_tolstring(L, -1, &keys[n].len);
            lua_rawseti(L, holder, (lua_Integer)n + 1);
        }
        n++;
    }
    if (n <= MAX_KEYS_ON_STACK) {
        for (size_t i = 1; i < n; i++) { /* records are small: insertion sort */
            key k = keys[i];
            size_t j = i;
            while (j > 0 && cmp_key(&keys[j - 1], &k) > 0) {
                keys[j] = keys[j - 1];
                j--;
            }
            keys[j] = k;
        }
    } else {
        qsort(keys, n, sizeof *keys, cmp_key);
    }
    *count = n;
    return keys;
}

/* Pushes the value of the key whose text is k (a string key, else a number or
 * boolean key shown as k). */
static void push_value(lua_State *L, int idx, const key *k)
{
    lua_pushlstring(L, k->s, k->len);
    if (lua_rawget(L, idx) != LUA_TNIL)
        return;
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TNUMBER || kt == LUA_TBOOLEAN) {
            lua_pushvalue(L, -2);
            const char *ks = kt == LUA_TBOOLEAN ? (lua_toboolean(L, -1) ? "true" : "false") : lua_tostring(L, -1);
            int match = ks && strlen(ks) == k->len && memcmp(ks, k->s, k->len) == 0;
            lua_pop(L, 1);
            if (match) {
                lua_remove(L, -2);
                return;
            }
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
}

static void encode_table(lua_State *L, jbuf *b, int idx, int depth)
{
    if (depth > MAX_DEPTH)
        luaL_error(L, "table nested too deeply (or a cycle)");
    luaL_checkstack(L, 8, "JSON encoding");
    lua_Integer n;
    if (array_length(L, b, idx, &n)) {
        PUTLIT(L, b, "[");
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                PUTLIT(L, b, ",");
            lua_rawgeti(L, idx, i);
            encode(L, b, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        PUTLIT(L, b, "]");
        return;
    }
    int top = lua_gettop(L);
    /* A small record (the common case: events, report records): one lua_next pass
     * leaves every value on the stack beside its key's text; then sorted by key. */
    typedef struct {
        const char *s;
        size_t len;
        int slot;
    } kv;
    kv small[MAX_KEYS_ON_STACK];
    size_t nk = 0;
    int fits = lua_checkstack(L, MAX_KEYS_ON_STACK * 2 + 4);
    lua_pushnil(L);
    while (fits && lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (nk == MAX_KEYS_ON_STACK || (kt != LUA_TSTRING)) {
            fits = 0; /* many keys, or keys that are not strings: the general path */
            break;
        }
        lua_insert(L, -2);                   /* value below its key */
        small[nk].s = lua_tolstring(L, -1, &small[nk].len);
        small[nk].slot = lua_gettop(L) - 1;
        nk++;
        lua_pushvalue(L, -1); /* the key stays as a text anchor; a copy drives lua_next */
    }
    if (fits) {
        for (size_t i = 1; i < nk; i++) {
            kv k = small[i];
            size_t j = i;
            while (j > 0 && cmp_key((const key *)&small[j - 1], (const key *)&k) > 0) {
                small[j] = small[j - 1];
                j--;
            }
            small[j] = k;
        }
        PUTLIT(L, b, "{");
        for (size_t i = 0; i < nk; i++) {
            if (i)
                PUTLIT(L, b, ",");
            put_string(L, b, small[i].s, small[i].len);
            PUTLIT(L, b, ":");
            encode(L, b, small[i].slot, depth + 1);
        }
        PUTLIT(L, b, "}");
        lua_settop(L, top);
        return;
    }
    lua_settop(L, top);
    key stack_keys[MAX_KEYS_ON_STACK];
    size_t count;
    key *keys = object_keys(L, idx, &count, stack_keys);
    PUTLIT(L, b, "{");
    for (size_t i = 0; i < count; i++) {
        if (i)
            PUTLIT(L, b, ",");
        put_string(L, b, keys[i].s, keys[i].len);
        PUTLIT(L, b, ":");
        push_value(L, idx, &keys[i]);
        encode(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    PUTLIT(L, b, "}");
    lua_settop(L, top);
}

static void encode(lua_State *L, jbuf *b, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        PUTLIT(L, b, "null");
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            PUTLIT(L, b, "true");
        else
            PUTLIT(L, b, "false");
        break;
    case LUA_TNUMBER:
        put_number(L, b, idx);
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        put_string(L, b, s, len);
        break;
    }
    case LUA_TTABLE:
        encode_table(L, b, idx, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx)) {
            PUTLIT(L, b, "null"); /* json.null */
            break;
        }
        /* fall through */
    default:
        luaL_error(L, "cannot encode a %s value", luaL_typename(L, idx));
    }
}

static int encode_protected(lua_State *L)
{
    jbuf *b = lua_touserdata(L, 2);
    encode(L, b, 1, 0);
    return 0;
}

/* One buffer serves every call (encoding never re-enters itself); it keeps its
 * capacity, so a stream of similar records costs no reallocation. */
static jbuf shared;

int jenc_encode(lua_State *L, int idx, size_t max_bytes, const char *array_mt)
{
    if (!plain['a'])
        init_plain();
    idx = lua_absindex(L, idx);
    shared.len = 0;
    shared.max = max_bytes;
    shared.array_mt = array_mt;
    lua_pushcfunction(L, encode_protected);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, &shared);
    int ok = lua_pcall(L, 2, 0, 0) == LUA_OK;
    if (ok)
        lua_pushlstring(L, shared.data ? shared.data : "", shared.len);
    if (shared.cap > (1u << 20)) { /* do not keep a huge buffer after a huge value */
        free(shared.data);
        shared.data = NULL;
        shared.cap = 0;
    }
    return ok;
}
