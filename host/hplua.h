/* hplua.h - the C API for instrument modules.
 *
 * An instrument module is an ordinary Lua C module (luaopen_NAME) that a test file
 * loads with require. Built against this header it can record messages and
 * measurements on the running test and wait for its file descriptors inside
 * hplua's event loop, so that child output keeps draining and the test's timeout
 * and Ctrl-C keep working while the instrument is slow:
 *
 *     #include <hplua.h>
 *     int luaopen_dmm(lua_State *L) {
 *         HPLUA_CHECK_ABI(L);             first: refuses a host of another ABI
 *         ...
 *     }
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags hplua) dmm.c -o dmm.so
 * The functions are provided by the hplua executable; do not link liblua.
 */
#ifndef HPLUA_H
#define HPLUA_H

#include <lauxlib.h>
#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HPLUA_VERSION_MAJOR 0
#define HPLUA_VERSION_MINOR 1
#define HPLUA_VERSION_PATCH 0
/* Raised whenever a function here changes its signature or meaning. */
#define HPLUA_ABI_VERSION 1

#if defined(__GNUC__)
#define HPLUA_API __attribute__((visibility("default")))
#else
#define HPLUA_API
#endif

/* Raises a Lua error unless the host implements module_abi. Call it first in
 * luaopen_NAME through HPLUA_CHECK_ABI(L). */
HPLUA_API void hplua_check_abi(lua_State *L, int module_abi);
#define HPLUA_CHECK_ABI(L) hplua_check_abi((L), HPLUA_ABI_VERSION)

/* The ABI version of the running host. */
HPLUA_API int hplua_abi_version(void);

/* Records a message on the running test (on the run outside a test), like
 * hp.set_message(text, key); key may be NULL. printf-style format. */
HPLUA_API void hplua_set_message(lua_State *L, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Records a numeric measurement like hp.measure{}; pass HPLUA_NO_LIMIT for a
 * missing min or max and NULL for no unit. Returns 1 when within limits, 0 when
 * not (the test then fails at its end). Raises when no test runs. */
#define HPLUA_NO_LIMIT (__builtin_nan(""))
HPLUA_API int hplua_measure(lua_State *L, const char *name, double value, const char *unit, double min, double max);

/* Waits until fd is ready for events (POLLIN, POLLOUT, ...) or timeout seconds
 * pass (timeout < 0: no limit of its own). Child processes are served meanwhile.
 * Returns HPLUA_READY or HPLUA_TIMEOUT. When the test's deadline passes or the
 * operator interrupts, it raises the host's timeout/interrupt error (a Lua error:
 * free or anchor your resources first, e.g. keep them in userdata with __gc). */
#define HPLUA_READY 1
#define HPLUA_TIMEOUT 0
HPLUA_API int hplua_wait_fd(lua_State *L, int fd, int events, double timeout);

/* Id of the running test ("module::name"), or NULL outside a test. The string
 * stays valid until the test ends. */
HPLUA_API const char *hplua_current_test(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
