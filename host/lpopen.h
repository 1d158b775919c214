/* os.execute and io.popen through the process engine (lpopen.c): the same
 * results as standard Lua's, but timeouts, Ctrl-C and the no-orphan guarantee
 * cover them. Part of hplua.process.internal. */
#ifndef HPLUA_LPOPEN_H
#define HPLUA_LPOPEN_H

#include <lua.h>

/* Adds install_standard_library to the table on top of the stack: it puts the
 * engine's os.execute and io.popen in place, and io.type and io.close that know
 * the pipes. */
void lpopen_register(lua_State *L);

#endif
