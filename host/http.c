/* The station's HTTP front around libmicrohttpd: see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOKEN_COOKIE "hplua_token"

/* libmicrohttpd (and the TLS stack it links) is loaded on first use, by `hplua
 * serve` only: every other hplua process, test children included, starts
 * without paying for it. The calls go through this table. */
#define MHD_FUNCTIONS(X)                                                                                              \
    X(MHD_add_response_header) X(MHD_create_response_from_buffer) X(MHD_create_response_from_callback)                \
    X(MHD_destroy_response) X(MHD_get_connection_values) X(MHD_get_daemon_info) X(MHD_get_timeout)                    \
    X(MHD_lookup_connection_value) X(MHD_queue_response) X(MHD_resume_connection) X(MHD_run) X(MHD_start_daemon)      \
    X(MHD_stop_daemon) X(MHD_suspend_connection)

static struct {
#define FIELD(name) __typeof__(&name) name;
    MHD_FUNCTIONS(FIELD)
#undef FIELD
} mhd;

static int mhd_load(char *err, size_t errlen)
{
    static void *lib;
    if (lib)
        return 0;
    void *h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libmicrohttpd.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load libmicrohttpd: %s", dlerror());
        return -1;
    }
#define LOAD(name)                                                                                                    \
    if (!(*(void **)&mhd.name = dlsym(h, #name))) {                                                                   \
        snprintf(err, errlen, "libmicrohttpd lacks %s", #name);                                                       \
        dlclose(h);                                                                                                   \
        return -1;                                                                                                    \
    }
    MHD_FUNCTIONS(LOAD)
#undef LOAD
    lib = h;
    return 0;
}

#define MHD_add_response_header mhd.MHD_add_response_header
#define MHD_create_response_from_buffer mhd.MHD_create_response_from_buffer
#define MHD_create_response_from_callback mhd.MHD_create_response_from_callback
#define MHD_destroy_response mhd.MHD_destroy_response
#define MHD_get_connection_values mhd.MHD_get_connection_values
#define MHD_get_daemon_info mhd.MHD_get_daemon_info
#define MHD_get_timeout mhd.MHD_get_timeout
#define MHD_lookup_connection_value mhd.MHD_lookup_connection_value
#define MHD_queue_response mhd.MHD_queue_response
#define MHD_resume_connection mhd.MHD_resume_connection
#define MHD_run mhd.MHD_run
#define MHD_start_daemon mhd.MHD_start_daemon
#define MHD_stop_daemon mhd.MHD_stop_daemon
#define MHD_suspend_connection mhd.MHD_suspend_connection

typedef struct sse_client {
    struct sse_client *next, *prev;
    http_server *srv;
    struct MHD_Connection *conn;
    const char *ext; /* borrowed replay, sent first */
    size_t ext_off, ext_len;
    void (*release)(void *);
    void *release_ud;
    char *buf;
    size_t off, len, cap;
    int suspended, dropped;
} sse_client;

struct http_server {
    struct MHD_Daemon *d;
    int epfd, listen_fd, port;
    http_options o;
    char *token;
    sse_client *clients;
    size_t nclients, ndropped;
    const char *index; /* path of the page "/" serves */
};

struct http_request {
    http_server *srv;
    struct MHD_Connection *c;
    const char *method, *path;
    char *body;
    size_t len, cap;
    int too_big, answered;
};

static const char *const common_headers[] = {
    "X-Content-Type-Options", "nosniff", "Referrer-Policy", "no-referrer", "X-Frame-Options", "DENY", NULL};

static const char *const page_headers[] = {
    "Content-Security-Policy",
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    NULL};

/* ---- responses ---- */

static void add_headers(struct MHD_Response *resp, const char *const *h)
{
    for (; h && h[0] && h[1]; h += 2)
        MHD_add_response_header(resp, h[0], h[1]);
}

static int queue(http_request *r, int status, struct MHD_Response *resp, const char *content_type,
                 const char *const *extra)
{
    if (!resp)
        return -1;
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    add_headers(resp, common_headers);
    add_headers(resp, extra);
    enum MHD_Result ok = MHD_queue_response(r->c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->answered = 1;
    return ok == MHD_YES ? 0 : -1;
}

int http_respond(http_request *r, int status, const char *content_type, const char *body, size_t len,
                 const char *const *extra)
{
    if (r->answered)
        return -1;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    return queue(r, status, resp, content_type, extra);
}

/* A small JSON error body: {"error": "..."} (msg is a fixed ASCII text). */
static enum MHD_Result respond_error(http_request *r, int status, const char *msg, const char *const *extra)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
    return http_respond(r, status, "application/json", body, (size_t)n, extra) == 0 ? MHD_YES : MHD_NO;
}

/* ---- event streams ---- */

static int sse_append(sse_client *cl, const char *data, size_t len)
{
    if (cl->off && cl->off == cl->len) {
        cl->off = cl->len = 0;
        if (cl->cap > 256 * 1024) { /* drained after a burst: give the memory back */
            free(cl->buf);
            cl->buf = NULL;
            cl->cap = 0;
        }
    }
    if (cl->len + len > cl->cap && cl->off) {
        memmove(cl->buf, cl->buf + cl->off, cl->len - cl->off);
        cl->len -= cl->off;
        cl->off = 0;
    }
    if (cl->len + len > cl->cap) {
        size_t cap = cl->cap ? cl->cap : 4096;
        while (cap < cl->len + len)
            cap *= 2;
        char *nb = realloc(cl->buf, cap);
        if (!nb)
            return -1;
        cl->buf = nb;
        cl->cap = cap;
    }
    memcpy(cl->buf + cl->len, data, len);
    cl->len += len;
    return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_client *cl = cls;
    if (cl->dropped)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (cl->ext_off < cl->ext_len) {
        size_t n = cl->ext_len - cl->ext_off < max ? cl->ext_len - cl->ext_off : max;
        memcpy(buf, cl->ext + cl->ext_off, n);
        cl->ext_off += n;
        return (ssize_t)n;
    }
    size_t pending = cl->len - cl->off;
    if (!pending) {
        /* nothing to send: off MHD's loop until the next broadcast resumes it */
        cl->off = cl->len = 0;
        cl->suspended = 1;
        MHD_suspend_connection(cl->conn);
        return 0;
    }
    size_t n = pending < max ? pending : max;
    memcpy(buf, cl->buf + cl->off, n);
    cl->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    sse_client *cl = cls;
    http_server *s = cl->srv;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        s->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    s->nclients--;
    if (cl->release)
        cl->release(cl->release_ud);
    free(cl->buf);
    free(cl);
}

int http_respond_stream(http_request *r, const char *initial, size_t len, void (*release)(void *ud), void *ud)
{
    if (r->answered)
        return -1;
    http_server *s = r->srv;
    sse_client *cl = calloc(1, sizeof *cl);
    if (cl && release) {
        cl->ext = initial;
        cl->ext_len = len;
    }
    if (!cl || (!release && sse_append(cl, initial, len) != 0)) {
        if (cl)
            free(cl->buf);
        free(cl);
        return -1;
    }
    cl->srv = s;
    cl->conn = r->c;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sse_read, cl, sse_free);
    if (!resp) {
        free(cl->buf);
        free(cl);
        return -1;
    }
    cl->release = release; /* from here on, sse_free releases the borrowed replay */
    cl->release_ud = ud;
    cl->next = s->clients;
    if (s->clients)
        s->clients->prev = cl;
    s->clients = cl;
    s->nclients++;
    static const char *const h[] = {"Cache-Control", "no-store", "X-Accel-Buffering", "no", NULL};
    return queue(r, 200, resp, "text/event-stream; charset=utf-8", h);
}

void http_broadcast(http_server *s, const char *data, size_t len)
{
    for (sse_client *cl = s->clients; cl; cl = cl->next) {
        if (cl->dropped)
            continue;
        /* the shared replay costs nothing per client: only its own queue counts */
        if (cl->len - cl->off + len > s->o.sse_limit || sse_append(cl, data, len) != 0) {
            cl->dropped = 1; /* too far behind: closed; the browser resumes with Last-Event-ID */
            s->ndropped++;
        }
        if (cl->suspended) {
            cl->suspended = 0;
            MHD_resume_connection(cl->conn);
        }
    }
}

size_t http_stream_clients(const http_server *s) { return s->nclients; }
size_t http_stream_dropped(const http_server *s) { return s->ndropped; }

/* ---- the checks ---- */

static int equal_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0 && lb > 0;
}

/* A Host header naming this machine's loopback: without a token the station
 * answers only those, so a web page cannot reach it by DNS rebinding. */
static int host_is_loopback(const char *host)
{
    if (!host)
        return 0;
    char name[256];
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end)
            return 0;
        n = (size_t)(end - host - 1);
        host++;
    } else {
        const char *colon = strchr(host, ':');
        n = colon ? (size_t)(colon - host) : strlen(host);
    }
    if (n == 0 || n >= sizeof name)
        return 0;
    memcpy(name, host, n);
    name[n] = 0;
    if (strcasecmp(name, "localhost") == 0)
        return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, name, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, name, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

static int same_origin(const char *origin, const char *host)
{
    static const char scheme[] = "http://";
    if (!host || strncasecmp(origin, scheme, sizeof scheme - 1) != 0)
        return 0;
    return strcasecmp(origin + sizeof scheme - 1, host) == 0;
}

static int authorized(http_request *r)
{
    const char *token = r->srv->token;
    const char *auth = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && equal_secret(auth + 7, token))
        return 1;
    const char *cookie = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, TOKEN_COOKIE);
    return cookie && equal_secret(cookie, token);
}

static const http_file *find_file(const http_server *s, const char *path)
{
    if (strcmp(path, "/") == 0)
        path = s->index;
    for (const http_file *f = s->o.files; f && f->path; f++)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

static enum MHD_Result dispatch(http_server *s, http_request *r)
{
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    int post = strcmp(r->method, "POST") == 0;
    if (!get && !post) {
        static const char *const allow[] = {"Allow", "GET, HEAD, POST", NULL};
        return respond_error(r, 405, "method not allowed", allow);
    }
    const char *host = http_req_header(r, "Host");
    if (s->token) {
        const char *given = http_req_arg(r, "token");
        if (get && strcmp(r->path, "/") == 0 && given) {
            if (!equal_secret(given, s->token))
                return respond_error(r, 401, "wrong token", NULL);
            /* the panel keeps the token in a cookie its scripts cannot read */
            char cookie[1024];
            snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict", TOKEN_COOKIE, s->token);
            const char *const h[] = {"Location", "/", "Set-Cookie", cookie, "Cache-Control", "no-store", NULL};
            return http_respond(r, 303, "text/plain", "", 0, h) == 0 ? MHD_YES : MHD_NO;
        }
        if (!authorized(r)) {
            static const char *const h[] = {"WWW-Authenticate", "Bearer", NULL};
            return respond_error(r, 401, "token needed: Authorization: Bearer TOKEN, or open /?token=TOKEN once",
                                 h);
        }
    } else if (!host_is_loopback(host)) {
        return respond_error(r, 403, "this station answers only to a loopback Host name", NULL);
    }
    const char *origin = http_req_header(r, "Origin");
    if (post && origin && !same_origin(origin, host))
        return respond_error(r, 403, "foreign Origin", NULL);
    if (strncmp(r->path, "/api/", 5) == 0 || strcmp(r->path, "/api") == 0) {
        s->o.handler(s->o.ud, r);
        if (!r->answered)
            return respond_error(r, 500, "no answer", NULL);
        return MHD_YES;
    }
    if (!get) {
        static const char *const allow[] = {"Allow", "GET, HEAD", NULL};
        return respond_error(r, 405, "method not allowed", allow);
    }
    const http_file *f = find_file(s, r->path);
    if (!f)
        return respond_error(r, 404, "not found", NULL);
    struct MHD_Response *resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    int html = strncmp(f->content_type, "text/html", 9) == 0;
    return queue(r, 200, resp, f->content_type, html ? page_headers : NULL) == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *s = cls;
    http_request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->c = c;
        *con_cls = r;
        r->method = method;
        r->path = url;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > HTTP_MAX_BODY)
            return respond_error(r, 413, "request body over 64 KiB", NULL);
        return MHD_YES;
    }
    r->method = method;
    r->path = url;
    if (r->answered) { /* answered early (413): discard the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || r->len + n > HTTP_MAX_BODY) {
            r->too_big = 1;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 1024;
            while (cap < r->len + n + 1)
                cap *= 2;
            char *nb = realloc(r->body, cap);
            if (!nb)
                return MHD_NO;
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = 0;
        return MHD_YES;
    }
    if (r->too_big)
        return respond_error(r, 413, "request body over 64 KiB", NULL);
    return dispatch(s, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    http_request *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* %HH and '+' decoded, except %00, which stays as text: no NUL ever cuts a path short. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 && (hi || lo)) {
            *w++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *w++ = *p == '+' ? ' ' : *p;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* ---- the server ---- */

static int open_listener(const char *bind_addr, int port, int *bound_port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        snprintf(err, errlen, "--bind: '%s' is not an IPv4 or IPv6 address", bind_addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", bind_addr, port, strerror(errno));
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    return fd;
}

http_server *http_start(const http_options *o, char *err, size_t errlen)
{
    if (mhd_load(err, errlen) != 0)
        return NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->o = *o;
    s->epfd = -1;
    s->index = "/index.html";
    for (const http_file *f = o->files; o->index && f && f->path; f++)
        if (strcmp(f->path, o->index) == 0)
            s->index = f->path; /* built in: lives as long as the program */
    s->o.index = NULL;
    if (!s->o.sse_limit)
        s->o.sse_limit = 4u << 20;
    if (o->token && *o->token && !(s->token = strdup(o->token))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->listen_fd = open_listener(o->bind, o->port, &s->port, err, errlen);
    if (s->listen_fd < 0)
        goto fail;
    s->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_access, s,
                            MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned)128,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "libmicrohttpd could not start");
        close(s->listen_fd);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = info ? info->epoll_fd : -1};
    if (!info || s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, info->epoll_fd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        http_stop(s);
        return NULL;
    }
    return s;
fail:
    free(s->token);
    free(s);
    return NULL;
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    if (s->d) {
        /* MHD must not be stopped with suspended connections: resume and end them */
        for (sse_client *cl = s->clients; cl; cl = cl->next) {
            cl->dropped = 1;
            if (cl->suspended) {
                cl->suspended = 0;
                MHD_resume_connection(cl->conn);
            }
        }
        MHD_run(s->d);
        MHD_stop_daemon(s->d);
        close(s->listen_fd);
    }
    if (s->epfd >= 0)
        close(s->epfd);
    free(s->token);
    free(s);
}

int http_fd(const http_server *s) { return s->epfd; }
int http_port(const http_server *s) { return s->port; }

double http_timeout(http_server *s)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(s->d, &ms) != MHD_YES)
        return -1;
    return (double)ms / 1000.0;
}

void http_run(http_server *s) { MHD_run(s->d); }

int http_watch(http_server *s, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

int http_unwatch(http_server *s, int fd) { return epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : errno; }

/* ---- the request ---- */

const char *http_req_method(const http_request *r) { return r->method; }
const char *http_req_path(const http_request *r) { return r->path; }

const char *http_req_header(const http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

const char *http_req_arg(const http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    void (*fn)(void *, const char *, const char *);
    void *ud;
} args_iter;

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    args_iter *it = cls;
    it->fn(it->ud, k, v);
    return MHD_YES;
}

void http_req_args(const http_request *r, void (*fn)(void *ud, const char *k, const char *v), void *ud)
{
    args_iter it = {fn, ud};
    MHD_get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, each_arg, &it);
}

const char *http_req_body(const http_request *r, size_t *len)
{
    *len = r->len;
    return r->body ? r->body : "";
}

int http_json_depth(const char *s, size_t len, int cap)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len && max < cap; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max)
                max = depth;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return max;
}
