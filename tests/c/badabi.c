/* A module as if built against another hplua.h: the host must refuse it. */
#include "hplua.h"

int luaopen_badabi(lua_State *L)
{
    hplua_check_abi(L, HPLUA_ABI_VERSION + 41);
    lua_pushliteral(L, "must not get here");
    return 1;
}
