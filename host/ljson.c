/* hplua.json: JSON encoding (our own writer, with a size budget), decoding through
 * cJSON, and report files written atomically. */
#include "fdio.h"
#include "heap.h"
#include "host.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
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

/* A table marked by json.array (its metatable is the registry's ARRAY_MT), or one
 * whose keys are exactly 1..n. */
static int is_array(lua_State *L, int idx, lua_Integer *n, const void *array_mt)
{
    if (lua_getmetatable(L, idx)) {
        int arr = lua_topointer(L, -1) == array_mt;
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

/* ---- Encoder: Lua value -> JSON text, written straight into a growing buffer. ----
 * Object keys are sorted, so reports are stable from run to run. The expansion is
 * counted as it is produced: a table shared many times is written out at each use,
 * and a budget stops a small value that would expand to gigabytes. */

/* What one value costs beyond its text: roughly what a decoded copy needs (a
 * cJSON node, a Lua table slot). Counted so that "[0,0,0,...]" cannot cheat. */
#define VALUE_COST 32
#define DEFAULT_BUDGET ((size_t)256 << 20)

typedef struct {
    char *p;
    size_t len, cap;
    int busy; /* the shared scratch buffer is in use */
} jbuf;

/* The sorted order of the keys of objects seen before. Tables built by the same
 * code (an event of one type, a test record) have the same keys, met in the same
 * order by lua_next; short keys are interned strings, so a shape is the sequence of
 * key pointers. The keys of a cached shape are anchored (a table in the cache's user
 * value), so an address cannot be reused by another string while its shape is
 * cached: a hit is a match of pointers. A shape also keeps its keys' text as written
 * (`"key":`, with the comma before all but the first), when all of it is plain. One
 * cache per Lua state, in the registry. */
#define SHAPES 64
#define SMALL_OBJECT 48
#define SHORT_KEY 40 /* LUAI_MAXSHORTLEN: longer strings are not interned */
#define TEMPLATE 1024

typedef struct {
    int n;
    unsigned gen; /* changes whenever the entry is filled again (by a nested object, too) */
    const char *keys[SMALL_OBJECT];
    unsigned char order[SMALL_OBJECT];
    unsigned short seg[SMALL_OBJECT + 1]; /* where each key's text starts; 0 0: none */
    char text[TEMPLATE];
} shape;

typedef struct {
    lua_State *L;
    jbuf *b;
    shape *shapes; /* SHAPES entries, or NULL */
    int pretty;
    size_t budget, cost;
    const void *array_mt; /* json.array's metatable (array_mt()) */
    char err[160];        /* set on failure */
} encoder;

/* json.array's metatable, looked up once an encoding, not once a table. */
static const void *array_mt(lua_State *L)
{
    luaL_getmetatable(L, ARRAY_MT);
    const void *p = lua_topointer(L, -1);
    lua_pop(L, 1);
    return p;
}

static int jbuf_gc(lua_State *L)
{
    jbuf *b = lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    return 0;
}

#define SCRATCH_KEEP ((size_t)64 << 10)
/* A lines buffer is refilled at once (an output writes it again and again): up to a
 * megabyte is kept, so that a big batch does not grow it again from nothing. */
#define LINES_KEEP ((size_t)1 << 20)
static char SCRATCH_KEY;

/* The encoder's shared buffer (created on first use). */
static jbuf *scratch_buffer(lua_State *L)
{
    if (luaL_newmetatable(L, "hplua.json.buffer")) {
        lua_pushcfunction(L, jbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY) == LUA_TUSERDATA) {
        jbuf *b = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return b;
    }
    lua_pop(L, 1);
    jbuf *b = lua_newuserdatauv(L, sizeof(jbuf), 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, "hplua.json.buffer");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SCRATCH_KEY);
    return b;
}

/* One buffer serves every encoding to a string (kept in the registry, freed with the
 * state); a call made while it is busy (an error escaped mid-encode) gets its own,
 * anchored on the stack. */
static jbuf *scratch_take(lua_State *L, int *own)
{
    jbuf *b = scratch_buffer(L);
    *own = b->busy;
    if (*own) {
        b = lua_newuserdatauv(L, sizeof(jbuf), 0);
        memset(b, 0, sizeof *b);
        luaL_setmetatable(L, "hplua.json.buffer");
    }
    b->busy = 1;
    b->len = 0;
    return b;
}

/* Ends an encoding into the scratch buffer: -> the text, or nil and the error. */
static int scratch_give(lua_State *L, encoder *e, int own, int ok)
{
    jbuf *b = e->b;
    if (ok)
        lua_pushlstring(L, b->p ? b->p : "", b->len);
    b->busy = 0;
    if (own || b->cap > SCRATCH_KEEP) { /* a large text's buffer goes now, not at a collection */
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
    }
    if (!ok) {
        lua_pushnil(L);
        lua_pushstring(L, e->err);
        return 2;
    }
    return 1;
}

static char SHAPES_KEY;

/* The state's shape cache (created on first use; NULL when memory is short). */
static shape *shape_cache(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SHAPES_KEY) == LUA_TUSERDATA) {
        shape *c = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return c;
    }
    lua_pop(L, 1);
    shape *c = lua_newuserdatauv(L, SHAPES * sizeof(shape), 1);
    memset(c, 0, SHAPES * sizeof(shape));
    /* the anchors: a table of keys per shape, made now so that filling one in never
     * allocates (no memory error in the middle of an encoding) */
    lua_createtable(L, SHAPES, 0);
    for (int i = 1; i <= SHAPES; i++) {
        lua_createtable(L, SMALL_OBJECT, 0);
        lua_rawseti(L, -2, i);
    }
    lua_setiuservalue(L, -2, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SHAPES_KEY);
    return c;
}

static void budget_message(encoder *e)
{
    if (e->budget % ((size_t)1 << 20) == 0)
        snprintf(e->err, sizeof e->err, "too large: expands to more than %zu MB", e->budget >> 20);
    else
        snprintf(e->err, sizeof e->err, "too large: expands to more than %zu bytes", e->budget);
}

static int charge(encoder *e, size_t n)
{
    if (e->cost > e->budget || n > e->budget - e->cost) {
        budget_message(e);
        return 0;
    }
    e->cost += n;
    return 1;
}

static int put_slow(encoder *e, const char *s, size_t n)
{
    if (!charge(e, n))
        return 0;
    jbuf *b = e->b;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            snprintf(e->err, sizeof e->err, "out of memory");
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 1;
}

/* Appends n bytes; the common case (room in the buffer and the budget) inline. */
static inline int put(encoder *e, const char *s, size_t n)
{
    jbuf *b = e->b;
    if (e->cost > e->budget || n > e->budget - e->cost || b->cap - b->len < n)
        return put_slow(e, s, n);
    e->cost += n;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 1;
}

#define PUTLIT(e, s) put((e), (s), sizeof(s) - 1)

static int newline(encoder *e, int depth)
{
    if (!e->pretty)
        return 1;
    if (!PUTLIT(e, "\n"))
        return 0;
    for (int i = 0; i < depth; i++)
        if (!PUTLIT(e, "  "))
            return 0;
    return 1;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is invalid. NUL is
 * invalid here: strings travel through C afterwards (cJSON, report readers). */
static size_t utf8_seq(const unsigned char *s, size_t avail, unsigned *cpo)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || n > avail || c == 0)
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
    *cpo = cp;
    return n;
}

/* Bytes written as they are: printable ASCII but the quote and the backslash. */
static const unsigned char PLAIN[256] = {
    [' '] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1,
    ['?'] = 1, ['@'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['['] = 1, [']'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1,
    ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['{'] = 1,
    ['|'] = 1, ['}'] = 1, ['~'] = 1,
};

/* The number of PLAIN bytes at the start of s: eight at a time while no byte of a
 * word is a control, DEL, non-ASCII, a quote or a backslash. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_ZERO(v) (((v) - ONES) & ~(v) & HIGHS)
static size_t plain_prefix(const unsigned char *s, size_t len)
{
    size_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        if ((w & HIGHS) | ((w - 0x20 * ONES) & ~w & HIGHS) | HAS_ZERO(w ^ ('"' * ONES)) |
            HAS_ZERO(w ^ ('\\' * ONES)) | HAS_ZERO(w ^ (0x7f * ONES)))
            break;
    }
    while (k < len && PLAIN[s[k]])
        k++;
    return k;
}

/* A JSON string: invalid UTF-8 (and NUL) repaired to U+FFFD, controls escaped, and
 * U+2028/U+2029 escaped too (JavaScript readers). */
static int put_string(encoder *e, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    /* the common case: a short string of plain ASCII, copied with its quotes at once */
    if (len <= 256) {
        size_t k = plain_prefix(s, len);
        jbuf *b = e->b;
        if (k == len && e->cost <= e->budget && len + 2 <= e->budget - e->cost && b->cap - b->len >= len + 2) {
            char *q = b->p + b->len;
            q[0] = '"';
            memcpy(q + 1, s, len);
            q[len + 1] = '"';
            b->len += len + 2;
            e->cost += len + 2;
            return 1;
        }
    }
    if (!PUTLIT(e, "\""))
        return 0;
    size_t i = 0, run = 0; /* run: bytes copied verbatim, pending */
    while (i < len) {
        if (PLAIN[s[i]]) { /* plain ASCII, the common case */
            size_t j = i + 1 + plain_prefix(s + i + 1, len - i - 1);
            run += j - i;
            i = j;
            continue;
        }
        unsigned cp = 0;
        size_t n = utf8_seq(s + i, len - i, &cp);
        const char *rep = NULL;
        char ubuf[8];
        if (n == 0) {
            rep = "\xef\xbf\xbd";
            n = 1;
        } else if (cp == '"') {
            rep = "\\\"";
        } else if (cp == '\\') {
            rep = "\\\\";
        } else if (cp < 0x20) {
            rep = cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : cp == '\r' ? "\\r" : cp == '\b' ? "\\b" : cp == '\f' ? "\\f" : NULL;
            if (!rep) {
                snprintf(ubuf, sizeof ubuf, "\\u%04x", cp);
                rep = ubuf;
            }
        } else if (cp == 0x2028 || cp == 0x2029) {
            rep = cp == 0x2028 ? "\\u2028" : "\\u2029";
        }
        if (rep) {
            if ((run && !put(e, (const char *)s + i - run, run)) || !put(e, rep, strlen(rep)))
                return 0;
            run = 0;
        } else {
            run += n;
        }
        i += n;
    }
    if (run && !put(e, (const char *)s + i - run, run))
        return 0;
    return PUTLIT(e, "\"");
}

/* A number that is a whole count of microseconds (durations are kept so), written
 * as "%.15g" writes it, without snprintf and strtod: k / 10^6 is the double nearest
 * that decimal, and rounding d to 15 digits gives those digits. Returns the length,
 * or 0 when d is not such a number (or "%.15g" would use an exponent). */
static int put_micros(char *buf, size_t size, double d)
{
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e9))
        return 0;
    long long k = llround(a * 1e6);
    if ((double)k / 1e6 != a)
        return 0;
    char tmp[32], *q = tmp + sizeof tmp;
    int frac = 6, digits = 0;
    while (frac > 0 && k % 10 == 0) { /* trailing zeros of the fraction go */
        k /= 10;
        frac--;
    }
    do {
        *--q = (char)('0' + k % 10);
        k /= 10;
        if (++digits == frac)
            *--q = '.';
    } while (k || digits < frac);
    if (digits == frac) /* 0.xxx */
        *--q = '0';
    if (d < 0)
        *--q = '-';
    size_t n = (size_t)(tmp + sizeof tmp - q);
    if (n >= size)
        return 0;
    memcpy(buf, q, n);
    return (int)n;
}

static int put_number(encoder *e, lua_State *L, int idx)
{
    char buf[64];
    int n;
    if (lua_isinteger(L, idx)) {
        /* as LUA_INTEGER_FMT ("%lld") writes it, without snprintf's cost */
        lua_Integer v = lua_tointeger(L, idx);
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        char *q = buf + sizeof buf;
        do {
            *--q = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v < 0)
            *--q = '-';
        return put(e, q, (size_t)(buf + sizeof buf - q));
    } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d))
            return PUTLIT(e, "null");
        n = put_micros(buf, sizeof buf, d);
        if (n > 0)
            return put(e, buf, (size_t)n);
        n = snprintf(buf, sizeof buf, "%.15g", d);
        if (strtod(buf, NULL) != d)
            n = snprintf(buf, sizeof buf, "%.17g", d);
        /* whatever the locale (os.setlocale in a test), JSON wants a point */
        char point = localeconv()->decimal_point[0];
        for (int i = 0; point != '.' && i < n; i++)
            if (buf[i] == point)
                buf[i] = '.';
    }
    return put(e, buf, (size_t)n);
}

typedef struct {
    const char *s;
    size_t len;
    lua_Integer idx;
    int pos; /* where lua_next met it (for the shape cache) */
} keyref;

static int cmp_keyref(const void *a, const void *b)
{
    const keyref *x = a, *y = b;
    if (x->len && y->len && x->s[0] != y->s[0]) /* most keys differ at once */
        return (unsigned char)x->s[0] < (unsigned char)y->s[0] ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int put_value(encoder *e, int idx, int depth);

static int put_array(encoder *e, int idx, lua_Integer n, int depth)
{
    lua_State *L = e->L;
    if (!PUTLIT(e, "["))
        return 0;
    for (lua_Integer i = 1; i <= n; i++) {
        if ((i > 1 && !PUTLIT(e, ",")) || !newline(e, depth + 1))
            return 0;
        lua_rawgeti(L, idx, i);
        int ok = put_value(e, -1, depth + 1);
        lua_pop(L, 1);
        if (!ok)
            return 0;
    }
    return (n == 0 || newline(e, depth)) && PUTLIT(e, "]");
}

/* Sorts refs by key text (insertion sort: objects here are small). */
static void sort_refs(keyref *refs, lua_Integer n)
{
    for (lua_Integer i = 1; i < n; i++) {
        keyref k = refs[i];
        lua_Integer j = i;
        while (j > 0 && cmp_keyref(&refs[j - 1], &k) > 0) {
            refs[j] = refs[j - 1];
            j--;
        }
        refs[j] = k;
    }
}

/* Keeps the shape of refs (sorted) in sh: its keys anchored, its order, and its
 * keys' text when all of it is plain and fits. refs are sorted on return. */
static void remember(encoder *e, shape *sh, keyref *refs, lua_Integer n)
{
    lua_State *L = e->L;
    sh->gen++;
    sh->n = 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SHAPES_KEY);
    lua_getiuservalue(L, -1, 1);
    lua_rawgeti(L, -1, (int)(sh - e->shapes) + 1); /* its anchors (presized: no allocation) */
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushvalue(L, (int)refs[i].idx - 1); /* the key, beside its value */
        lua_rawseti(L, -2, i + 1);
        sh->keys[i] = refs[i].s;
        refs[i].pos = (int)i;
    }
    lua_pop(L, 3);
    sort_refs(refs, n);
    size_t at = 0;
    int plain = 1;
    for (lua_Integer i = 0; i < n; i++) {
        sh->order[i] = (unsigned char)refs[i].pos;
        sh->seg[i] = (unsigned short)at;
        plain = plain && at + refs[i].len + 4 <= TEMPLATE &&
                plain_prefix((const unsigned char *)refs[i].s, refs[i].len) == refs[i].len;
        if (plain) {
            if (i > 0)
                sh->text[at++] = ',';
            sh->text[at++] = '"';
            memcpy(sh->text + at, refs[i].s, refs[i].len);
            at += refs[i].len;
            sh->text[at++] = '"';
            sh->text[at++] = ':';
        }
    }
    sh->seg[n] = plain ? (unsigned short)at : 0; /* 0: no text kept */
    sh->n = (int)n;
}

/* Sorts refs (n <= SMALL_OBJECT) by their keys, in the order remembered for their
 * shape; -> that shape, or NULL when the object is not one to cache (long keys). */
static shape *sort_cached(encoder *e, keyref *refs, lua_Integer n)
{
    if (!e->shapes || n < 2) {
        sort_refs(refs, n);
        return NULL;
    }
    uintptr_t h = (uintptr_t)n;
    for (lua_Integer i = 0; i < n; i++) {
        if (refs[i].len > SHORT_KEY) {
            sort_refs(refs, n);
            return NULL;
        }
        h = h * 31 + ((uintptr_t)refs[i].s >> 4);
    }
    shape *sh = &e->shapes[(h ^ (h >> 13)) % SHAPES];
    int same = sh->n == n;
    for (lua_Integer i = 0; same && i < n; i++)
        same = sh->keys[i] == refs[i].s;
    if (!same) {
        remember(e, sh, refs, n);
        return sh;
    }
    keyref sorted[SMALL_OBJECT];
    for (lua_Integer i = 0; i < n; i++)
        sorted[i] = refs[sh->order[i]];
    memcpy(refs, sorted, (size_t)n * sizeof *refs);
    return sh;
}

/* The common case without allocating: an object of at most SMALL_OBJECT string
 * keys. Its pairs are kept on the stack while sorting. Returns -1 when the table
 * does not fit (the caller takes the general path), else put_object's result. */
static int put_small_object(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    int top = lua_gettop(L);
    keyref refs[SMALL_OBJECT];
    lua_Integer n = 0;
    if (!lua_checkstack(L, 2 * SMALL_OBJECT + 8))
        return -1;
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* leaves key, value; a copy of the key drives lua_next */
        if (n == SMALL_OBJECT || lua_type(L, -2) != LUA_TSTRING) {
            lua_settop(L, top);
            return -1;
        }
        refs[n].s = lua_tolstring(L, -2, &refs[n].len);
        refs[n].idx = lua_gettop(L); /* the value's slot; its key's is the one below */
        n++;
        lua_pushvalue(L, -2);
    }
    shape *sh = sort_cached(e, refs, n);
    /* the keys' text as kept, while the entry holds this shape: a nested object of
     * another shape may fill the same entry again (its gen then changes) */
    int kept = sh && sh->seg[n] && !e->pretty;
    unsigned gen = kept ? sh->gen : 0;
    int ok = PUTLIT(e, "{");
    for (lua_Integer i = 0; ok && i < n; i++) {
        if (kept && sh->gen == gen)
            ok = put(e, sh->text + sh->seg[i], (size_t)(sh->seg[i + 1] - sh->seg[i]));
        else
            ok = (i == 0 || PUTLIT(e, ",")) && newline(e, depth + 1) && put_string(e, refs[i].s, refs[i].len) &&
                 (e->pretty ? PUTLIT(e, ": ") : PUTLIT(e, ":"));
        ok = ok && charge(e, VALUE_COST) && put_value(e, (int)refs[i].idx, depth + 1);
    }
    ok = ok && (n == 0 || newline(e, depth)) && PUTLIT(e, "}");
    lua_settop(L, top);
    return ok;
}

static int put_object(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    int small = put_small_object(e, idx, depth);
    if (small >= 0)
        return small;
    int top = lua_gettop(L);
    /* keys (as given) and their texts, anchored in two tables while sorting */
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_newtable(L);
    int texts = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
        lua_pushvalue(L, -1);
        luaL_tolstring(L, -1, NULL); /* numbers and booleans as text */
        lua_rawseti(L, texts, n);
        lua_pop(L, 1);
    }
    keyref *refs = lua_newuserdatauv(L, (size_t)n * sizeof *refs + 1, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, texts, i);
        refs[i - 1].s = lua_tolstring(L, -1, &refs[i - 1].len); /* stays anchored in texts */
        refs[i - 1].idx = i;
        lua_pop(L, 1);
    }
    qsort(refs, (size_t)n, sizeof *refs, cmp_keyref);
    int ok = PUTLIT(e, "{");
    for (lua_Integer i = 0; ok && i < n; i++) {
        ok = (i == 0 || PUTLIT(e, ",")) && newline(e, depth + 1) && charge(e, VALUE_COST) &&
             put_string(e, refs[i].s, refs[i].len) && (e->pretty ? PUTLIT(e, ": ") : PUTLIT(e, ":"));
        if (ok) {
            lua_rawgeti(L, keys, refs[i].idx);
            lua_rawget(L, idx);
            ok = put_value(e, -1, depth + 1);
            lua_pop(L, 1);
        }
    }
    ok = ok && (n == 0 || newline(e, depth)) && PUTLIT(e, "}");
    lua_settop(L, top);
    return ok;
}

static int put_value(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    idx = lua_absindex(L, idx);
    if (!charge(e, VALUE_COST))
        return 0;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return PUTLIT(e, "null");
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? PUTLIT(e, "true") : PUTLIT(e, "false");
    case LUA_TNUMBER:
        return put_number(e, L, idx);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return put_string(e, s, len);
    }
    case LUA_TTABLE: {
        if (depth > MAX_DEPTH) {
            snprintf(e->err, sizeof e->err, "table nested too deeply (or a cycle)");
            return 0;
        }
        luaL_checkstack(L, 8, "json");
        lua_Integer n;
        if (is_array(L, idx, &n, e->array_mt))
            return put_array(e, idx, n, depth);
        return put_object(e, idx, depth);
    }
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx))
            return PUTLIT(e, "null"); /* json.null */
        /* fall through */
    default:
        snprintf(e->err, sizeof e->err, "cannot encode a %s value", luaL_typename(L, idx));
        return 0;
    }
}

/* The default budget: the --max-memory cap when set, else 256 MB. */
static size_t default_budget(void)
{
    size_t cap = heap_limit();
    return cap ? cap : DEFAULT_BUDGET;
}

/* encode(value, [pretty], [max_bytes]) -> string | nil, err
 * max_bytes bounds the expansion (the text plus VALUE_COST per value); nil: the
 * --max-memory cap or 256 MB; math.huge: no bound. */
static int json_encode(lua_State *L)
{
    lua_settop(L, 3);
    encoder e = {.L = L,
                 .pretty = lua_toboolean(L, 2),
                 .budget = default_budget(),
                 .shapes = shape_cache(L),
                 .array_mt = array_mt(L)};
    if (!lua_isnil(L, 3)) {
        lua_Number mb = luaL_checknumber(L, 3);
        luaL_argcheck(L, mb >= 0, 3, "must not be negative");
        e.budget = mb >= 0x1p63 ? SIZE_MAX : (size_t)mb;
    }
    int own;
    e.b = scratch_take(L, &own);
    return scratch_give(L, &e, own, put_value(&e, 1, 0));
}

/* ---- Fields: an object's keys, sorted and written out once, for a record the host
 * encodes again and again (a test's record in the JSON report). Its values are given
 * in the keys' order; a nil one is left out, as from a table. No table is filled,
 * walked or sorted for each record. */
#define FIELDS_MT "hplua.json.fields"

typedef struct {
    int n;
    unsigned char arg[SMALL_OBJECT];      /* the i-th key in sorted order is argument arg[i] */
    unsigned short seg[SMALL_OBJECT + 1]; /* where the i-th key's text ("key":) starts */
    char text[TEMPLATE];
} fields;

/* fields(keys) -> a template for objects with (some of) these string keys */
static int json_fields(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n <= SMALL_OBJECT, 1, "must hold 1 to 48 keys");
    keyref refs[SMALL_OBJECT];
    for (lua_Integer i = 0; i < n; i++) {
        if (lua_rawgeti(L, 1, i + 1) != LUA_TSTRING)
            return luaL_argerror(L, 1, "keys must be strings");
        refs[i].s = lua_tolstring(L, -1, &refs[i].len); /* stays anchored in the keys' table */
        refs[i].idx = i;
        lua_pop(L, 1);
    }
    sort_refs(refs, n);
    fields *f = lua_newuserdatauv(L, sizeof(fields), 0);
    jbuf b = {0};
    encoder e = {.L = L, .b = &b, .budget = SIZE_MAX};
    int ok = 1;
    for (lua_Integer i = 0; ok && i < n; i++) {
        if (i > 0 && cmp_keyref(&refs[i - 1], &refs[i]) == 0) {
            free(b.p);
            return luaL_argerror(L, 1, "keys must differ");
        }
        f->arg[i] = (unsigned char)refs[i].idx;
        f->seg[i] = (unsigned short)b.len;
        ok = put_string(&e, refs[i].s, refs[i].len) && PUTLIT(&e, ":") && b.len <= TEMPLATE;
    }
    if (!ok) {
        free(b.p);
        return luaL_argerror(L, 1, "keys too long");
    }
    f->seg[n] = (unsigned short)b.len;
    f->n = (int)n;
    memcpy(f->text, b.p, b.len);
    free(b.p);
    luaL_setmetatable(L, FIELDS_MT);
    return 1;
}

/* fields:encode(v1, ..., vn) -> string | nil, err: the object whose keys are the
 * template's, in the order given to json.fields, with these values (a nil value's
 * key is left out): the same text as json.encode of that table with no bound. */
static int fields_encode(lua_State *L)
{
    const fields *f = luaL_checkudata(L, 1, FIELDS_MT);
    lua_settop(L, f->n + 1);
    luaL_checkstack(L, 8, "json");
    encoder e = {.L = L, .budget = SIZE_MAX, .shapes = shape_cache(L), .array_mt = array_mt(L)};
    int own;
    e.b = scratch_take(L, &own);
    int ok = PUTLIT(&e, "{"), first = 1;
    for (int i = 0; ok && i < f->n; i++) {
        int idx = 2 + f->arg[i];
        if (lua_isnil(L, idx))
            continue;
        ok = (first || PUTLIT(&e, ",")) && put(&e, f->text + f->seg[i], (size_t)(f->seg[i + 1] - f->seg[i])) &&
             charge(&e, VALUE_COST) && put_value(&e, idx, 1);
        first = 0;
    }
    ok = ok && PUTLIT(&e, "}");
    return scratch_give(L, &e, own, ok);
}

static void fields_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"encode", fields_encode}, {NULL, NULL}};
    luaL_newmetatable(L, FIELDS_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* ---- Lines: a buffer of NDJSON lines that outputs share (the events file, the
 * history recorder's pipe). Each value is encoded once, straight into the buffer,
 * with no Lua string per line; the owner writes the buffer to its descriptors and
 * clears it. */
#define LINES_MT "hplua.json.lines"

static const char *errno_code(int err);

static jbuf *check_lines(lua_State *L)
{
    return luaL_checkudata(L, 1, LINES_MT);
}

/* lines() -> a line buffer */
static int json_lines(lua_State *L)
{
    jbuf *b = lua_newuserdatauv(L, sizeof(jbuf), 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, LINES_MT);
    return 1;
}

/* lines:add(value) -> true | nil, err: appends the value's JSON and "\n"; a value
 * that cannot be encoded leaves the buffer as it was. */
static int lines_add(lua_State *L)
{
    jbuf *b = check_lines(L);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    size_t before = b->len;
    encoder e = {.L = L, .b = b, .budget = default_budget(), .shapes = shape_cache(L), .array_mt = array_mt(L)};
    if (put_value(&e, 2, 0) && PUTLIT(&e, "\n")) {
        lua_pushboolean(L, 1);
        return 1;
    }
    b->len = before;
    lua_pushnil(L);
    lua_pushstring(L, e.err);
    return 2;
}

/* ---- Frames: Lua values in a compact binary form, for a pipe between two hplua
 * processes of one build (the run and its history recorder). No escaping, no
 * sorting, no number formatting: a frame is its length (4 bytes) and the value.
 * Values: 'z' nil or json.null, 't'/'f', 'i' integer, 'd' float (8 bytes each, the
 * machine's order), 's' length + bytes, 'A' a json.array (count, values), 'O' any
 * other table (count, key/value pairs; keys are strings or numbers). */

static int pack_value(encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return PUTLIT(e, "z");
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? PUTLIT(e, "t") : PUTLIT(e, "f");
    case LUA_TNUMBER: {
        char buf[9];
        if (lua_isinteger(L, idx)) {
            lua_Integer v = lua_tointeger(L, idx);
            buf[0] = 'i';
            memcpy(buf + 1, &v, 8);
        } else {
            lua_Number v = lua_tonumber(L, idx);
            buf[0] = 'd';
            memcpy(buf + 1, &v, 8);
        }
        return put(e, buf, 9);
    }
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        if (len > UINT32_MAX) {
            snprintf(e->err, sizeof e->err, "string too long");
            return 0;
        }
        char head[5] = {'s'};
        uint32_t n = (uint32_t)len;
        memcpy(head + 1, &n, 4);
        return put(e, head, 5) && put(e, str, len);
    }
    case LUA_TTABLE: {
        if (depth > MAX_DEPTH) {
            snprintf(e->err, sizeof e->err, "table nested too deeply (or a cycle)");
            return 0;
        }
        luaL_checkstack(L, 4, "pack");
        char head[5];
        int marked = 0;
        if (lua_getmetatable(L, idx)) {
            marked = lua_topointer(L, -1) == e->array_mt;
            lua_pop(L, 1);
        }
        if (marked) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
            uint32_t c = (uint32_t)n;
            head[0] = 'A';
            memcpy(head + 1, &c, 4);
            if (!put(e, head, 5))
                return 0;
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                int ok = pack_value(e, -1, depth + 1);
                lua_pop(L, 1);
                if (!ok)
                    return 0;
            }
            return 1;
        }
        /* the count goes first: write a place for it, fill it in at the end */
        size_t at = e->b->len;
        head[0] = 'O';
        memset(head + 1, 0, 4);
        if (!put(e, head, 5))
            return 0;
        uint32_t c = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int kt = lua_type(L, -2);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
                snprintf(e->err, sizeof e->err, "cannot pack a table key of type %s", luaL_typename(L, -2));
                lua_pop(L, 2);
                return 0;
            }
            if (!pack_value(e, -2, depth + 1) || !pack_value(e, -1, depth + 1)) {
                lua_pop(L, 2);
                return 0;
            }
            lua_pop(L, 1);
            c++;
        }
        memcpy(e->b->p + at + 1, &c, 4);
        return 1;
    }
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx))
            return PUTLIT(e, "z"); /* json.null */
        /* fall through */
    default:
        snprintf(e->err, sizeof e->err, "cannot pack a %s value", luaL_typename(L, idx));
        return 0;
    }
}

/* lines:pack(value) -> true | nil, err: appends one frame; a value that cannot be
 * packed leaves the buffer as it was. */
static int lines_pack(lua_State *L)
{
    jbuf *b = check_lines(L);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    size_t before = b->len;
    encoder e = {.L = L, .b = b, .budget = SIZE_MAX, .array_mt = array_mt(L)};
    static const char room[4] = {0};
    if (put(&e, room, 4) && pack_value(&e, 2, 0)) {
        size_t n = b->len - before - 4;
        if (n <= UINT32_MAX) {
            uint32_t len = (uint32_t)n;
            memcpy(b->p + before, &len, 4);
            lua_pushboolean(L, 1);
            return 1;
        }
        snprintf(e.err, sizeof e.err, "frame too large");
    }
    b->len = before;
    lua_pushnil(L);
    lua_pushstring(L, e.err);
    return 2;
}

typedef struct {
    const char *p, *end;
} reader;

static int take(reader *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return 0;
    memcpy(out, r->p, n);
    r->p += n;
    return 1;
}

/* Pushes the value at r (or nothing, returning 0, when the data is malformed). */
static int unpack_value(lua_State *L, reader *r, int depth)
{
    char tag;
    if (depth > MAX_DEPTH || !take(r, &tag, 1))
        return 0;
    luaL_checkstack(L, 3, "unpack");
    switch (tag) {
    case 'z':
        lua_pushlightuserdata(L, NULL);
        return 1;
    case 't':
    case 'f':
        lua_pushboolean(L, tag == 't');
        return 1;
    case 'i': {
        lua_Integer v;
        if (!take(r, &v, 8))
            return 0;
        lua_pushinteger(L, v);
        return 1;
    }
    case 'd': {
        lua_Number v;
        if (!take(r, &v, 8))
            return 0;
        lua_pushnumber(L, v);
        return 1;
    }
    case 's': {
        uint32_t n;
        if (!take(r, &n, 4) || (size_t)(r->end - r->p) < n)
            return 0;
        lua_pushlstring(L, r->p, n);
        r->p += n;
        return 1;
    }
    case 'A':
    case 'O': {
        uint32_t n;
        if (!take(r, &n, 4) || n > (size_t)(r->end - r->p))
            return 0;
        if (tag == 'A') {
            lua_createtable(L, (int)n, 0);
            for (uint32_t i = 1; i <= n; i++) {
                if (!unpack_value(L, r, depth + 1)) {
                    lua_pop(L, 1);
                    return 0;
                }
                lua_rawseti(L, -2, i);
            }
            luaL_setmetatable(L, ARRAY_MT);
            return 1;
        }
        lua_createtable(L, 0, (int)n);
        for (uint32_t i = 0; i < n; i++) {
            if (!unpack_value(L, r, depth + 1)) {
                lua_pop(L, 1);
                return 0;
            }
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
                lua_pop(L, 2);
                return 0;
            }
            if (!unpack_value(L, r, depth + 1)) {
                lua_pop(L, 2);
                return 0;
            }
            /* json.null stays null inside tables, as the decoder leaves it */
            lua_rawset(L, -3);
        }
        return 1;
    }
    default:
        return 0;
    }
}

/* unpack(data, [pos]) -> value, next_pos | nil, pos (the frame at pos is not all
 * there yet) | raises on a malformed frame */
static int json_unpack(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Integer pos = luaL_optinteger(L, 2, 1);
    luaL_argcheck(L, pos >= 1 && (size_t)pos <= len + 1, 2, "out of range");
    size_t off = (size_t)pos - 1;
    uint32_t n;
    if (len - off < 4) {
        lua_pushnil(L);
        lua_pushinteger(L, pos);
        return 2;
    }
    memcpy(&n, data + off, 4);
    if (len - off - 4 < n) {
        lua_pushnil(L);
        lua_pushinteger(L, pos);
        return 2;
    }
    reader r = {data + off + 4, data + off + 4 + n};
    if (!unpack_value(L, &r, 0) || r.p != r.end)
        return luaL_error(L, "malformed frame at byte %d", (int)pos);
    lua_pushinteger(L, (lua_Integer)(off + 4 + n + 1));
    return 2;
}

/* lines:size() -> bytes pending */
static int lines_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_lines(L)->len);
    return 1;
}

/* Forgets the pending text (a large buffer's memory goes too). */
static void lines_reset(jbuf *b)
{
    b->len = 0;
    if (b->cap > LINES_KEEP) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

/* Writes every pending byte to fd (waiting while a non-blocking pipe is full), then
 * clears the buffer when clear says so, written or not -> true | nil, message, code. */
static int lines_put(lua_State *L, int clear)
{
    jbuf *b = check_lines(L);
    int fd = (int)luaL_checkinteger(L, 2);
    int err = fd_write_all(fd, b->p, b->len);
    if (clear)
        lines_reset(b);
    if (err) {
        lua_pushnil(L);
        lua_pushfstring(L, "write: %s", strerror(err));
        lua_pushstring(L, errno_code(err));
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* lines:write(fd) -> true | nil, message, code; the buffer is kept (clear it). */
static int lines_write(lua_State *L) { return lines_put(L, 0); }

/* lines:drain(fd): write then clear, in one call, so that no hook (a test's timeout
 * firing while an output writes) comes between the two and the lines are written twice. */
static int lines_drain(lua_State *L) { return lines_put(L, 1); }

/* lines:take() -> the pending text; the buffer is cleared */
static int lines_take(lua_State *L)
{
    jbuf *b = check_lines(L);
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    b->len = 0;
    return 1;
}

/* lines:clear(): forgets the pending text */
static int lines_clear(lua_State *L)
{
    lines_reset(check_lines(L));
    return 0;
}

static void lines_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"add", lines_add},     {"pack", lines_pack},   {"size", lines_size},   {"write", lines_write},
                                       {"take", lines_take},   {"clear", lines_clear}, {"drain", lines_drain},
                                       {NULL, NULL}};
    luaL_newmetatable(L, LINES_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, jbuf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
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
        if (fabs(d) < 9007199254740992.0 && d == (double)(lua_Integer)d) /* the range first: a cast out of it is undefined */
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
            if (cJSON_IsNull(c))
                lua_pushlightuserdata(L, NULL); /* json.null keeps the positions after it */
            else
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

/* decode(text, [keys]) -> value | nil, err. keys: a set { name = true } of the top-level
 * object's members to convert (a reader that needs a few fields of a large event skips
 * building the rest). */
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
    if (lua_istable(L, 2) && cJSON_IsObject(j)) {
        lua_newtable(L);
        for (const cJSON *c = j->child; c; c = c->next) {
            int wanted = lua_getfield(L, 2, c->string) != LUA_TNIL;
            lua_pop(L, 1);
            if (wanted) {
                from_json(L, c, 1);
                lua_setfield(L, -2, c->string);
            }
        }
    } else {
        from_json(L, j, 0);
    }
    cJSON_Delete(j);
    return 1;
}

/* ---- A few members of an object, without decoding the rest ----
 * members(text, key, ...) -> true, value, ... | nil, err: the values of the top-level
 * object's members named (in the order asked; nil for absent or null), decoded as
 * decode would; the others are checked against JSON's grammar as they are skipped,
 * not converted. A reader that needs three fields of each of thousands of events (the
 * station's fold) pays for those three. Refused, as decode refuses it: text that is
 * not one JSON object. Stricter than decode (cJSON): a raw control byte in a string,
 * a byte other than JSON's four as white space, nesting deeper than MAX_DEPTH. */

#define MEMBERS_MAX 16

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at an opening quote: -> past the closing one, NULL if unterminated or not JSON (a
 * control byte, an unknown escape). *plain: no escape inside. */
static const char *skip_string(const char *p, const char *e, int *plain)
{
    *plain = 1;
    for (p++; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            *plain = 0;
            if (++p == e || !strchr("\"\\/bfnrtu", *p) || !*p)
                return NULL;
            if (*p == 'u') {
                for (int i = 0; i < 4; i++)
                    if (++p == e || !isxdigit((unsigned char)*p))
                        return NULL;
            }
        }
    }
    return NULL;
}

static const char *skip_digits(const char *p, const char *e)
{
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    return p;
}

/* p at a number or a literal: -> past it, NULL if it is not one (JSON's grammar). */
static const char *skip_scalar(const char *p, const char *e)
{
    static const char *const literals[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if ((size_t)(e - p) >= n && memcmp(p, literals[i], n) == 0)
            return p + n;
    }
    const char *q = p;
    if (q < e && *q == '-')
        q++;
    if (q < e && *q == '0')
        q++;
    else if (q < e && *q >= '1' && *q <= '9')
        q = skip_digits(q, e);
    else
        return NULL;
    if (q < e && *q == '.') {
        const char *f = q + 1;
        if ((q = skip_digits(f, e)) == f)
            return NULL;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        const char *x = q;
        if ((q = skip_digits(x, e)) == x)
            return NULL;
    }
    return q;
}

/* p at a value: -> past it, NULL if it is not one. The grammar is checked throughout
 * (a value asked for is then converted by cJSON; the others are only skipped). */
static const char *skip_value(const char *p, const char *e)
{
    char stack[MAX_DEPTH + 2];
    int depth = 0, plain;
    /* what may come next inside the innermost container: a value (or its end, when
     * empty), a name, a colon, a comma or the end */
    enum { VALUE, FIRST_VALUE, NAME, FIRST_NAME, COLON, AFTER } want = VALUE;
    for (;;) {
        p = skip_ws(p, e);
        if (p >= e)
            return NULL;
        char c = *p;
        if (want == AFTER) { /* inside a container (at depth 0 the value has ended) */
            if (c == ',') {
                want = stack[depth - 1] == '}' ? NAME : VALUE;
                p++;
            } else if (c == stack[depth - 1]) {
                depth--;
                p++;
            } else {
                return NULL;
            }
        } else if (want == COLON) {
            if (c != ':')
                return NULL;
            p++;
            want = VALUE;
        } else if (want == NAME || want == FIRST_NAME) {
            if (c == '}' && want == FIRST_NAME) {
                depth--;
                p++;
                want = AFTER;
            } else if (c == '"') {
                if (!(p = skip_string(p, e, &plain)))
                    return NULL;
                want = COLON;
            } else {
                return NULL;
            }
        } else if (c == ']' && want == FIRST_VALUE) {
            depth--;
            p++;
            want = AFTER;
        } else if (c == '{' || c == '[') {
            if (depth > MAX_DEPTH)
                return NULL;
            stack[depth++] = c == '{' ? '}' : ']';
            want = c == '{' ? FIRST_NAME : FIRST_VALUE;
            p++;
        } else if (c == '"') {
            if (!(p = skip_string(p, e, &plain)))
                return NULL;
            want = AFTER;
        } else {
            if (!(p = skip_scalar(p, e)))
                return NULL;
            want = AFTER;
        }
        if (want == AFTER && depth == 0) /* the value has ended */
            return p;
    }
}

/* pushes the value at [v, ve) as decode would */
static int push_span(lua_State *L, const char *v, const char *ve)
{
    size_t n = (size_t)(ve - v);
    if (n >= 2 && v[0] == '"') {
        int plain;
        if (skip_string(v, ve, &plain) == ve && plain) {
            lua_pushlstring(L, v + 1, n - 2);
            return 1;
        }
    } else if (n > 0 && n < 16) {
        lua_Integer i = 0;
        size_t k = v[0] == '-';
        size_t d = k;
        while (d < n && v[d] >= '0' && v[d] <= '9')
            i = i * 10 + (v[d++] - '0');
        if (d == n && d > k && !(v[k] == '0' && n > k + 1)) {
            lua_pushinteger(L, k ? -i : i);
            return 1;
        }
        if (n == 4 && memcmp(v, "null", 4) == 0) {
            lua_pushnil(L);
            return 1;
        }
    }
    const char *pe = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(v, n, &pe, 0);
    if (j && pe != ve) { /* cJSON stops at the end of a value: the span must be all of it */
        cJSON_Delete(j);
        j = NULL;
    }
    if (!j)
        return 0;
    from_json(L, j, 1);
    cJSON_Delete(j);
    return 1;
}

static int json_members(lua_State *L)
{
    size_t len, klen[MEMBERS_MAX];
    const char *s = luaL_checklstring(L, 1, &len);
    const char *key[MEMBERS_MAX];
    const char *at[MEMBERS_MAX], *end[MEMBERS_MAX];
    int nk = lua_gettop(L) - 1;
    luaL_argcheck(L, nk <= MEMBERS_MAX, MEMBERS_MAX + 2, "too many keys");
    for (int i = 0; i < nk; i++) {
        key[i] = luaL_checklstring(L, i + 2, &klen[i]);
        at[i] = NULL;
    }
    const char *e = s + len, *p = skip_ws(s, e);
    const char *why = "not an object";
    if (p == e || *p != '{')
        goto bad;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        p++;
    else
        for (;;) {
            int plain;
            why = "a member's name";
            if (p == e || *p != '"')
                goto bad;
            const char *k = p + 1, *ke = skip_string(p, e, &plain);
            if (!ke)
                goto bad;
            p = skip_ws(ke, e);
            if (p == e || *p != ':')
                goto bad;
            p = skip_ws(p + 1, e);
            const char *v = p;
            why = "a member's value";
            if (!(p = skip_value(v, e))) {
                p = v;
                goto bad;
            }
            size_t kn = (size_t)(ke - 1 - k);
            cJSON *escaped = NULL; /* a name written with escapes, decoded (rare) */
            if (!plain && nk > 0) {
                escaped = cJSON_ParseWithLength(k - 1, (size_t)(ke - k + 1));
                if (!escaped || !cJSON_IsString(escaped)) {
                    cJSON_Delete(escaped);
                    p = k - 1;
                    why = "a member's name";
                    goto bad;
                }
                k = escaped->valuestring;
                kn = strlen(k);
            }
            for (int i = 0; i < nk; i++)
                if (klen[i] == kn && memcmp(key[i], k, kn) == 0) {
                    at[i] = v; /* the last of a repeated name wins, as with decode */
                    end[i] = p;
                }
            cJSON_Delete(escaped);
            p = skip_ws(p, e);
            why = "the object's end";
            if (p < e && *p == ',') {
                p = skip_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            goto bad;
        }
    why = "text after the object";
    if ((p = skip_ws(p, e)) != e)
        goto bad;
    luaL_checkstack(L, nk + 1, "json.members");
    lua_pushboolean(L, 1);
    for (int i = 0; i < nk; i++) {
        if (!at[i])
            lua_pushnil(L);
        else if (!push_span(L, at[i], end[i])) {
            lua_settop(L, nk + 1);
            why = "a member's value";
            p = at[i];
            goto bad;
        }
    }
    return nk + 1;
bad:
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON: %s at byte %d", why, (int)(p - s) + 1);
    return 2;
}

/* ---- Report files, written atomically ----
 * A temporary is created beside the target with O_EXCL|O_NOFOLLOW under an
 * unpredictable name, written, fsync'ed and renamed over the target, so a reader
 * never sees half a report and a planted link cannot redirect the write. A target
 * that exists and is not a regular file (a FIFO, a terminal, /dev/null) or that is
 * hplua's own stdout or stderr (/dev/stdout) is written directly, never replaced.
 * A symbolic link to a regular file is kept: the file it resolves to is replaced. */

#define ATOMIC_MT "hplua.json.atomic"

typedef struct {
    int fd;       /* -1 once closed */
    int direct;   /* writing into the target itself */
    int err;      /* the first write error (errno) */
    int open;     /* neither committed nor aborted */
    char *path;   /* as given, for messages */
    char *target; /* the file renamed over */
    char *tmp;    /* the temporary beside it (NULL when direct) */
} atomic;

static const char *errno_code(int err)
{
    const char *name = strerrorname_np(err);
    return name ? name : "EIO";
}

/* nil, "cannot write PATH: why", code */
static int push_write_error(lua_State *L, const char *path, int err, const char *why)
{
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write %s: %s", path, why ? why : strerror(err));
    lua_pushstring(L, errno_code(err));
    return 3;
}

static void random_hex(char out[17])
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* no entropy yet (early boot): still unique enough, and O_EXCL keeps it safe */
        static unsigned counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 30) ^
                               ((unsigned long long)getpid() << 12) ^ (++counter * 0x9e3779b97f4a7c15ULL);
        memcpy(r, &x, sizeof r);
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static int same_file(const struct stat *st, int fd)
{
    struct stat fs;
    return fstat(fd, &fs) == 0 && fs.st_dev == st->st_dev && fs.st_ino == st->st_ino;
}

static void atomic_close(atomic *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    if (a->tmp) {
        unlink(a->tmp);
        free(a->tmp);
        a->tmp = NULL;
    }
    a->open = 0;
}

static int atomic_gc(lua_State *L)
{
    atomic *a = luaL_checkudata(L, 1, ATOMIC_MT);
    atomic_close(a);
    free(a->path);
    free(a->target);
    a->path = a->target = NULL;
    return 0;
}

static atomic *atomic_new(lua_State *L, const char *path)
{
    atomic *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    a->fd = -1;
    luaL_setmetatable(L, ATOMIC_MT);
    a->path = strdup(path);
    if (!a->path)
        luaL_error(L, "out of memory");
    return a;
}

/* Decides how the target is written; with create, also opens it. Returns 0 or an
 * errno, with *why set when strerror would not say it well. */
static int atomic_prepare(atomic *a, int create, const char **why)
{
    const char *path = a->path;
    struct stat st, lst;
    *why = NULL;
    if (!*path)
        return ENOENT;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return *why = "it is a folder", EISDIR;
        int own = same_file(&st, 1) ? 1 : same_file(&st, 2) ? 2 : -1;
        if (own >= 0 || !S_ISREG(st.st_mode)) {
            a->direct = 1;
            if (!create)
                return own >= 0 || access(path, W_OK) == 0 ? 0 : errno;
            if (own >= 0)
                a->fd = fcntl(own, F_DUPFD_CLOEXEC, 3);
            else
                a->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
            if (a->fd < 0) {
                int err = errno;
                if (err == ENXIO && S_ISFIFO(st.st_mode))
                    *why = "no process reads the FIFO";
                return err;
            }
            if (own < 0)
                fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) & ~O_NONBLOCK);
            a->open = 1;
            return 0;
        }
        if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
            a->target = realpath(path, NULL);
            if (!a->target)
                return errno;
        }
    } else {
        int err = errno;
        if (err == ENOENT && lstat(path, &lst) == 0)
            return *why = "it is a symbolic link to a missing file", ENOENT;
        if (err != ENOENT)
            return err;
    }
    if (!a->target && !(a->target = strdup(path)))
        return ENOMEM;
    /* the temporary: .NAME.RANDOM.tmp in the target's folder */
    const char *slash = strrchr(a->target, '/');
    int dirlen = slash ? (int)(slash - a->target) + 1 : 0;
    const char *base = slash ? slash + 1 : a->target;
    int baselen = strlen(base) > 100 ? 100 : (int)strlen(base);
    size_t size = (size_t)dirlen + (size_t)baselen + 32;
    if (!(a->tmp = malloc(size)))
        return ENOMEM;
    int err = EEXIST;
    for (int tries = 0; tries < 16 && err == EEXIST; tries++) {
        char hex[17];
        random_hex(hex);
        snprintf(a->tmp, size, "%.*s.%.*s.%s.tmp", dirlen, a->target, baselen, base, hex);
        a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        err = a->fd < 0 ? errno : 0;
    }
    if (err) {
        free(a->tmp);
        a->tmp = NULL;
        if (err == ENOENT || err == ENOTDIR)
            *why = "its folder does not exist";
        return err;
    }
    a->open = 1;
    if (!create)
        atomic_close(a); /* only checking: the temporary goes again */
    return 0;
}

static int atomic_put(atomic *a, const char *s, size_t len)
{
    if (!a->err) /* our stdout may be non-blocking: fd_write_all waits for room */
        a->err = fd_write_all(a->fd, s, len);
    return a->err;
}

static int atomic_sync(atomic *a)
{
    if (!a->err && !a->direct && fsync(a->fd) != 0)
        a->err = errno;
    return a->err;
}

static int atomic_commit(atomic *a)
{
    int err = atomic_sync(a);
    if (close(a->fd) != 0 && !err && !a->direct)
        err = errno;
    a->fd = -1;
    if (!err && a->tmp && rename(a->tmp, a->target) != 0)
        err = errno;
    if (!err && a->tmp) {
        free(a->tmp);
        a->tmp = NULL;
        /* make the rename itself durable */
        char *dir = strdup(a->target);
        if (dir) {
            char *slash = strrchr(dir, '/');
            if (slash)
                slash[slash == dir ? 1 : 0] = 0;
            int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    atomic_close(a); /* unlinks the temporary if the rename did not happen */
    return err;
}

static int push_atomic_result(lua_State *L, atomic *a, int err)
{
    if (err)
        return push_write_error(L, a->path, err, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* open_atomic(path) -> handle | nil, err, code: a report file written piece by piece;
 * nothing appears at path until :commit(). */
static int json_open_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    atomic *a = atomic_new(L, path);
    const char *why;
    int err = atomic_prepare(a, 1, &why);
    if (err) {
        atomic_close(a);
        return push_write_error(L, path, err, why);
    }
    return 1;
}

/* check_target(path) -> true | nil, err, code: can a report be written there? */
static int json_check_target(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    atomic *a = atomic_new(L, path);
    const char *why;
    int err = atomic_prepare(a, 0, &why);
    atomic_close(a);
    if (err)
        return push_write_error(L, path, err, why);
    lua_pushboolean(L, 1);
    return 1;
}

static atomic *check_open(lua_State *L)
{
    atomic *a = luaL_checkudata(L, 1, ATOMIC_MT);
    return a;
}

static int closed_error(lua_State *L, atomic *a)
{
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write %s: already committed or aborted", a->path ? a->path : "?");
    lua_pushliteral(L, "closed");
    return 3;
}

/* handle:write(s, ...) -> true | nil, err, code */
static int atomic_write(lua_State *L)
{
    atomic *a = check_open(L);
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++)
        luaL_checkstring(L, i);
    if (!a->open)
        return closed_error(L, a);
    for (int i = 2; i <= n && !a->err; i++) {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        atomic_put(a, s, len);
    }
    return push_atomic_result(L, a, a->err);
}

/* handle:copy(file, offset, length) -> true | nil, err, code: length bytes of an open
 * file (a spool's temporary) from offset, copied in the kernel where it can, with
 * no string made of them */
static int atomic_copy(lua_State *L)
{
    atomic *a = check_open(L);
    luaL_Stream *f = luaL_checkudata(L, 2, LUA_FILEHANDLE);
    lua_Integer off = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    luaL_argcheck(L, f->closef != NULL, 2, "the file is closed");
    luaL_argcheck(L, off >= 0, 3, "must not be negative");
    luaL_argcheck(L, len >= 0, 4, "must not be negative");
    if (!a->open)
        return closed_error(L, a);
    if (!a->err && len > 0)
        a->err = fflush(f->f) != 0 ? errno : fd_copy_range(a->fd, fileno(f->f), off, (size_t)len);
    return push_atomic_result(L, a, a->err);
}

/* handle:sync() -> true | nil, err, code: on disk now (before committing several) */
static int atomic_sync_l(lua_State *L)
{
    atomic *a = check_open(L);
    if (!a->open)
        return closed_error(L, a);
    return push_atomic_result(L, a, atomic_sync(a));
}

/* handle:commit() -> true | nil, err, code: fsync and rename over the target */
static int atomic_commit_l(lua_State *L)
{
    atomic *a = check_open(L);
    if (!a->open)
        return closed_error(L, a);
    return push_atomic_result(L, a, atomic_commit(a));
}

/* handle:abort(): the temporary goes, the target is left as it was */
static int atomic_abort_l(lua_State *L)
{
    atomic_close(check_open(L));
    lua_pushboolean(L, 1);
    return 1;
}

static int atomic_tostring(lua_State *L)
{
    atomic *a = check_open(L);
    lua_pushfstring(L, "hplua.json.atomic (%s, %s)", a->path ? a->path : "?", a->open ? "open" : "closed");
    return 1;
}

/* write_atomic(path, text) -> true | nil, err, code */
static int json_write_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    atomic *a = atomic_new(L, path);
    const char *why;
    int err = atomic_prepare(a, 1, &why);
    if (err) {
        atomic_close(a);
        return push_write_error(L, path, err, why);
    }
    atomic_put(a, text, len);
    return push_atomic_result(L, a, atomic_commit(a));
}

static void atomic_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"write", atomic_write},
                                       {"copy", atomic_copy},
                                       {"sync", atomic_sync_l},
                                       {"commit", atomic_commit_l},
                                       {"abort", atomic_abort_l},
                                       {NULL, NULL}};
    luaL_newmetatable(L, ATOMIC_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, atomic_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, atomic_abort_l);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, atomic_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
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
    /* valid UTF-8 without NUL (nearly always): the string itself */
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (i + 8 <= len && (memcpy(&w, u + i, 8), !((w & HIGHS) | ((w - 0x20 * ONES) & ~w & HIGHS)))) {
            i += 8; /* eight printable ASCII bytes */
            continue;
        }
        if (u[i] >= 0x20 && u[i] < 0x80) {
            i++;
            continue;
        }
        unsigned cp;
        size_t n = utf8_seq(u + i, len - i, &cp);
        if (n == 0)
            break;
        i += n;
    }
    if (i == len) {
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
                                   {"members", json_members},
                                   {"write_atomic", json_write_atomic},
                                   {"open_atomic", json_open_atomic},
                                   {"check_target", json_check_target},
                                   {"array", json_array},
                                   {"utf8_repair", json_utf8_repair},
                                   {"lines", json_lines},
                                   {"unpack", json_unpack},
                                   {"fields", json_fields},
                                   {NULL, NULL}};
    luaL_newmetatable(L, ARRAY_MT);
    lua_pop(L, 1);
    atomic_register(L);
    lines_register(L);
    fields_register(L);
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
