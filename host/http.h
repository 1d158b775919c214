/* The station's HTTP front, plain C around libmicrohttpd (no Lua; the library is
 * loaded when the first server starts, so only `hplua serve` pays for it). One thread:
 * MHD runs with external polling on its epoll fd, nested in an epoll set of our
 * own that can also watch other fds (the run's event FIFO), so the station's loop
 * waits on one fd with host_wait and neither side blocks the other.
 *
 * This layer owns everything that needs no knowledge of the station: the
 * built-in files, the security checks (loopback Host names, token, Origin, body
 * size) and Server-Sent Events with a bounded queue per client. Requests under
 * /api/ that pass the checks go to the handler, which answers synchronously. */
#ifndef HPLUA_HTTP_H
#define HPLUA_HTTP_H

#include <stddef.h>

#define HTTP_MAX_BODY (64 * 1024)

typedef struct http_server http_server;
typedef struct http_request http_request;

/* One built-in file (generated from web/ by cmake/embed_web.c). */
typedef struct http_file {
    const char *path; /* "/index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} http_file;

typedef struct http_options {
    const char *bind;  /* IPv4 or IPv6 address */
    int port;          /* 0: any free port */
    const char *token; /* NULL or "": none */
    const http_file *files; /* terminated by path NULL */
    const char *index;      /* the built-in file "/" serves (NULL: "/index.html"); read by http_start only */
    size_t sse_limit;  /* bytes a client may fall behind before it is dropped */
    /* Called for /api/... requests; must answer with http_respond or http_respond_stream. */
    void (*handler)(void *ud, http_request *req);
    void *ud;
} http_options;

/* Starts listening; NULL with a reason in err on failure. */
http_server *http_start(const http_options *o, char *err, size_t errlen);
/* Ends every connection and frees the server. */
void http_stop(http_server *s);
/* The fd to wait on for readability (the server's epoll set). */
int http_fd(const http_server *s);
/* The port actually bound. */
int http_port(const http_server *s);
/* Seconds until MHD needs a turn for its own timeouts, or -1: none. */
double http_timeout(http_server *s);
/* Handles whatever is ready (never blocks); handlers run from here. */
void http_run(http_server *s);
/* Adds or removes fd (readable) to the set http_fd waits on. Return 0 or errno. */
int http_watch(http_server *s, int fd);
int http_unwatch(http_server *s, int fd);
/* Queues data to every event-stream client; a client more than sse_limit
 * bytes behind is dropped (its browser reconnects with Last-Event-ID). */
void http_broadcast(http_server *s, const char *data, size_t len);
/* Number of connected event-stream clients, and of clients dropped so far. */
size_t http_stream_clients(const http_server *s);
size_t http_stream_dropped(const http_server *s);

/* The request in a handler. Strings live until the handler returns. */
const char *http_req_method(const http_request *r);
const char *http_req_path(const http_request *r);
/* Header (case-insensitive) or query argument, NULL when absent. */
const char *http_req_header(const http_request *r, const char *name);
const char *http_req_arg(const http_request *r, const char *name);
/* Calls fn for each query argument (value may be NULL). */
void http_req_args(const http_request *r, void (*fn)(void *ud, const char *k, const char *v), void *ud);
const char *http_req_body(const http_request *r, size_t *len);

/* Answers. extra is NULL or name, value, ..., NULL. Return 0, or -1 when MHD refused. */
int http_respond(http_request *r, int status, const char *content_type, const char *body, size_t len,
                 const char *const *extra);
/* Answers with an event stream that starts with initial, then gets broadcasts.
 * With release set, initial is borrowed (not copied: many panels joining at once
 * share one replay) until release(ud) is called; without, it is copied. */
int http_respond_stream(http_request *r, const char *initial, size_t len, void (*release)(void *ud), void *ud);

/* Deepest nesting of [ and { in a JSON text (strings skipped); stops counting at cap. */
int http_json_depth(const char *s, size_t len, int cap);

#endif
