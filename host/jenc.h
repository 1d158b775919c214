/* Direct JSON encoding of a Lua value (used by hplua.json). */
#ifndef HPLUA_JENC_H
#define HPLUA_JENC_H

#include <lua.h>
#include <stddef.h>

/* Encodes the value at idx. Pushes the text and returns 1, or pushes an error
 * message and returns 0. max_bytes: 0 for no budget. array_mt: the __name of the
 * metatable that marks a table as an array (empty ones included). */
int jenc_encode(lua_State *L, int idx, size_t max_bytes, const char *array_mt);

/* 1 when s is valid UTF-8 without NUL (JSON carries it unchanged), else 0. */
int jenc_valid_utf8(const char *s, size_t len);

#endif
