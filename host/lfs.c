/* hplua.fs: copying a file into the run's artifact folder with its size and
 * SHA-256 (Debian's nettle), for hp.attach. */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <nettle/sha2.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *errno_code(int err)
{
    switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EISDIR: return "EISDIR";
    case ENOSPC: return "ENOSPC";
    case ELOOP: return "ELOOP";
    default: return "EIO";
    }
}

static int fail(lua_State *L, const char *what, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    lua_pushstring(L, errno_code(err));
    return 3;
}

/* copy(src, dst) -> size, sha256 (hex) | nil, message, code. dst is created new
 * (O_EXCL|O_NOFOLLOW, mode 0644): an existing file or link there is never written. */
static int fs_copy(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail(L, "cannot read", src, errno);
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = S_ISDIR(st.st_mode) ? EISDIR : errno ? errno : EIO;
        close(in);
        return fail(L, "not a regular file:", src, err);
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) {
        int err = errno;
        close(in);
        return fail(L, "cannot create", dst, err);
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    char buf[1 << 16];
    lua_Integer size = 0;
    int err = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        sha256_update(&ctx, (size_t)n, (const uint8_t *)buf);
        size += n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                err = errno;
                break;
            }
            off += w;
        }
        if (err)
            break;
    }
    close(in);
    if (close(out) != 0 && !err)
        err = errno;
    if (err) {
        unlink(dst);
        return fail(L, "cannot copy to", dst, err);
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof digest, digest);
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    for (size_t i = 0; i < sizeof digest; i++) {
        static const char d[] = "0123456789abcdef";
        hex[2 * i] = d[digest[i] >> 4];
        hex[2 * i + 1] = d[digest[i] & 15];
    }
    hex[sizeof hex - 1] = 0;
    lua_pushinteger(L, size);
    lua_pushstring(L, hex);
    return 2;
}

/* mkdir(path, mode) -> true | nil, message, code (an existing folder is fine) */
static int fs_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0755);
    struct stat st;
    if (mkdir(path, (mode_t)mode) != 0 && !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return fail(L, "cannot create folder", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_hplua_fs(lua_State *L)
{
    static const luaL_Reg fns[] = {{"copy", fs_copy}, {"mkdir", fs_mkdir}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
