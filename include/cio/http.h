/* cio/http.h: HTTP/1.1 server and client (what aiohttp does for asyncio).
 *
 * Server: one task per connection on a cio server (cio/io.h), requests
 * parsed by llhttp in strict mode. Keep-alive, pipelining, chunked and
 * streamed bodies both ways, Expect: 100-continue, HEAD, a cached Date
 * header, limits on head size, header count and body size, a timeout per
 * phase (idle keep-alive, head, body, write) and graceful shutdown. A
 * router (method + path with `{name}` parameters and a `{name...}` tail),
 * middleware, and a static-file handler sit on top.
 *
 * Client: cio_http_request and its shortcuts with a keep-alive connection
 * pool per host (bounded per host and in total), a timeout per phase and
 * overall, bounded redirects, chunked and streamed bodies, gzip/deflate
 * decoding, and cio_http_fetch_all (N URLs, K in flight, retries with
 * backoff and jitter).
 *
 * Errors beyond errno: CIO_EHTTP (the peer sent a malformed HTTP message),
 * CIO_EREDIRECTS (redirect limit), CIO_ESERVER (a status >= 500 where a
 * call treats it as failure: cio_http_fetch_all). Nothing here is
 * thread-safe; every object belongs to the loop that made it.
 *
 * HTTPS: through the TLS layer (cio/tls.h), when cio is built with
 * OpenSSL: the server takes a server context (opts.tls), the client a
 * client context or, for https:// URLs without one, the defaults (system
 * trust store, verification on). Without OpenSSL, opts.tls gives -EINVAL
 * and https:// URLs -EPROTONOSUPPORT. Host names are resolved through
 * cio/dns.h when cio is built with c-ares; otherwise only numeric hosts
 * and "localhost" connect (others give CIO_ENOTFOUND).
 */
#ifndef CIO_HTTP_H
#define CIO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_tls_ctx cio_tls_ctx;

/* A header as the application gives it: NUL-terminated name and value. */
typedef struct cio_http_header {
    const char *name;
    const char *value;
} cio_http_header;

/* 0 if `name` is a valid header name (an RFC 9110 token) and `value` has
 * no CR, LF or NUL and no other control byte but tab; else -EINVAL. Every
 * call that takes headers from the application checks them this way, so
 * no header can split a message. Does not suspend. */
int cio_http_header_check(const char *name, const char *value);

/* The reason phrase of a status code ("Not Found"), or "Unknown". */
const char *cio_http_reason(int status);

/* ==== Server ============================================================ */

typedef struct cio_http_server cio_http_server;
/* An incoming request, valid during the handler call. */
typedef struct cio_http_req cio_http_req;
/* The response being written for it, valid during the handler call. */
typedef struct cio_http_writer cio_http_writer;

/* A request handler. It reads the request, writes the response with the
 * cio_http_writer calls and returns 0; what it did not finish is finished
 * for it (an unsent response goes out as set, a streamed body is ended).
 * A negative return is reported (cio's reporter) and, if nothing was sent
 * yet, answered with 500; if the response had started, the connection is
 * closed, so the client sees a truncated message, never a false success.
 * -ECANCELED is passed through silently. */
typedef int (*cio_http_handler)(cio_http_req *req, cio_http_writer *w,
                                void *arg);

typedef struct cio_http_server_opts {
    size_t max_head;       /* request line + headers, bytes; 0: 16 KiB */
    size_t max_headers;    /* header count; 0: 100 */
    size_t max_body;       /* request body, bytes; 0: 8 MiB (413 above) */
    int64_t idle_timeout;  /* keep-alive wait for the next request; 0: 60 s */
    int64_t head_timeout;  /* first byte to end of head; 0: 10 s (408) */
    int64_t body_timeout;  /* each wait for body bytes; 0: 30 s (408) */
    int64_t write_timeout; /* each wait to send; 0: 30 s */
    size_t max_conns;      /* connections at once; 0: no limit */
    int backlog;           /* listen backlog; 0: SOMAXCONN */
    unsigned listen_flags; /* CIO_REUSEPORT, ... (cio_listen) */
    const char *server;    /* Server header value; NULL: none */
    /* Serve HTTPS with this server context (cio_tls_server_ctx_new),
     * borrowed: free it after closing the server. The handshake must
     * finish within head_timeout. NULL: plain HTTP. */
    cio_tls_ctx *tls;
} cio_http_server_opts;

/* Serve HTTP/1.1 on `a` with `fn(req, w, arg)` for every request (use
 * cio_http_router_handler for routing). `opts` NULL: the defaults; it is
 * copied (`server` too). The caller owns `*out` and ends it with
 * cio_http_server_close. 0; -EINVAL (NULLs; opts->tls without OpenSSL;
 * a Server value with CR/LF); -errno from listen (-EADDRINUSE, ...);
 * -ENOMEM; CIO_ENOTASK. Does not suspend (except to undo a start that
 * failed with -ENOMEM). Idle keep-alive connections are closed by a task
 * of the server that looks every idle_timeout / 8 (1 ms to 1 s), so up to
 * that much after idle_timeout. */
int cio_http_server_start(cio_http_server **out, const cio_addr *a,
                          cio_http_handler fn, void *arg,
                          const cio_http_server_opts *opts);

/* The address listened on (with the kernel's port for port 0). */
const cio_addr *cio_http_server_addr(const cio_http_server *s);

/* Requests answered so far (counting error responses). */
uint64_t cio_http_server_requests(const cio_http_server *s);

/* Graceful shutdown: stop accepting, close idle keep-alive connections at
 * once, let requests in flight finish (their responses carry
 * `Connection: close`) for up to `grace` ns, then cancel the handlers
 * still running and wait for them; free the server. 0, or -ECANCELED if
 * the caller was cancelled (handlers are cancelled at once; the server is
 * freed all the same). NULL gives 0. Suspends. */
int cio_http_server_close(cio_http_server *s, int64_t grace);

/* ---- The request -------------------------------------------------------- */

/* "GET", "POST", ... (valid during the handler). */
const char *cio_http_req_method(const cio_http_req *r);
/* The request target as sent ("/a%20b?x=1"). */
const char *cio_http_req_target(const cio_http_req *r);
/* The path, percent-decoded, without the query ("/a b"). A target whose
 * path decodes to a NUL byte or bad %-escape was answered 400 before any
 * handler ran. */
const char *cio_http_req_path(const cio_http_req *r);
/* The raw query string after '?', "" when none. */
const char *cio_http_req_query(const cio_http_req *r);
/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
int cio_http_req_version(const cio_http_req *r);
/* The first value of header `name` (any case), NULL when absent. */
const char *cio_http_req_header(const cio_http_req *r, const char *name);
/* Header count, and header `i` (0-based, in arrival order): 0 and the
 * pointers, or -EINVAL out of range. */
size_t cio_http_req_header_count(const cio_http_req *r);
int cio_http_req_header_at(const cio_http_req *r, size_t i, const char **name,
                           const char **value);
/* A route parameter (`{id}` in the router's pattern), percent-decoded;
 * NULL when there is none of that name. */
const char *cio_http_req_param(const cio_http_req *r, const char *name);
/* The Content-Length of the body, or -1 when chunked or absent. */
int64_t cio_http_req_content_length(const cio_http_req *r);
/* The connection's peer address. */
const cio_addr *cio_http_req_peer(const cio_http_req *r);

/* Read the body as a stream: up to `n` bytes into `buf`. The first read of
 * a request that asked `Expect: 100-continue` sends `100 Continue`.
 * Returns the count, 0 at the end of the body; -EMSGSIZE past max_body
 * (the server answers 413 if nothing was sent); -ETIMEDOUT when a wait
 * for bytes exceeds body_timeout (408); CIO_EHTTP for a malformed body
 * (bad chunk); CIO_EOF if the client went away mid-body; -ECANCELED.
 * After an error the connection is closed after this request. Suspends. */
ssize_t cio_http_req_read(cio_http_req *r, void *buf, size_t n);

/* Read the whole body (at most `max` bytes; 0 means max_body) into a
 * buffer owned by the request (freed after the handler), NUL-terminated
 * for convenience. 0 with `*data` and `*len`; -EMSGSIZE beyond `max`;
 * errors as cio_http_req_read. Suspends. */
int cio_http_req_body(cio_http_req *r, const char **data, size_t *len,
                      size_t max);

/* ---- The response ------------------------------------------------------- */

/* Set the status (default 200). -EINVAL outside 100-999 (1xx other than
 * through 100-continue is not supported: -EINVAL); -EALREADY once the
 * head was sent. Does not suspend. */
int cio_http_writer_status(cio_http_writer *w, int status);

/* Add a response header (copied). -EINVAL for a name or value that fails
 * cio_http_header_check, or for Content-Length / Transfer-Encoding /
 * Connection / Date, which the server owns (use
 * cio_http_writer_length and cio_http_writer_close); -EALREADY after
 * the head went out; -ENOMEM. Does not suspend. */
int cio_http_writer_header(cio_http_writer *w, const char *name,
                           const char *value);

/* Declare the body length before the first write; otherwise a streamed
 * body is sent chunked (HTTP/1.1) or delimited by closing (HTTP/1.0).
 * -EALREADY after the head went out; -EINVAL for a negative length. */
int cio_http_writer_length(cio_http_writer *w, int64_t len);

/* Ask for the connection to be closed after this response
 * (`Connection: close`). Does not suspend. */
void cio_http_writer_close(cio_http_writer *w);

/* Write body bytes: the head goes out with the first write. For HEAD the
 * bytes are counted and dropped. Waits for room (backpressure, under
 * write_timeout). 0; -EMSGSIZE writing beyond a declared length;
 * -EPIPE / -ECONNRESET when the client went away; -ETIMEDOUT;
 * -ECANCELED. Suspends. */
int cio_http_writer_write(cio_http_writer *w, const void *data, size_t n);

/* Finish the response: send the head if not yet sent, end a chunked body,
 * flush. Writing a declared length short is an error: -EPIPE here, and the
 * connection is closed. Later calls return 0. Suspends. */
int cio_http_writer_end(cio_http_writer *w);

/* The whole response at once: status, Content-Type (NULL: none) and body,
 * then end. Errors as the calls above. Suspends. */
int cio_http_send(cio_http_writer *w, int status, const char *content_type,
                  const void *body, size_t len);

/* Whether the head has been sent (after which status and headers are
 * fixed). */
bool cio_http_writer_started(const cio_http_writer *w);

/* ---- Router and middleware ---------------------------------------------- */

typedef struct cio_http_router cio_http_router;

/* The rest of the chain, for a middleware to call (or not). */
typedef struct cio_http_next cio_http_next;
int cio_http_next_call(const cio_http_next *next, cio_http_req *r,
                       cio_http_writer *w);

/* A middleware wraps every routed request: it may inspect or answer the
 * request itself, or call cio_http_next_call and act on its result. */
typedef int (*cio_http_middleware)(cio_http_req *r, cio_http_writer *w,
                                   const cio_http_next *next, void *arg);

/* A router with no routes (everything 404). The caller frees it with
 * cio_http_router_free after the server using it is closed. 0, -ENOMEM,
 * -EINVAL. Does not suspend. */
int cio_http_router_new(cio_http_router **out);
void cio_http_router_free(cio_http_router *rt);

/* Route `method` ("GET"; "*" for any) and `pattern` to `fn(arg)`. A
 * pattern is a path of segments: literal ones, `{name}` matching one
 * non-empty segment, and a last `{name...}` matching the rest (maybe
 * empty, slashes included). Routes are tried in the order added. A path
 * that matches some route but not its method gets 405 with `Allow`; a GET
 * route also answers HEAD. 0; -EINVAL for a pattern not starting with
 * '/', an unclosed brace, or a `...` segment that is not last; -ENOMEM.
 * Does not suspend. */
int cio_http_router_add(cio_http_router *rt, const char *method,
                        const char *pattern, cio_http_handler fn, void *arg);

/* Add a middleware; the first added is the outermost. 0, -EINVAL,
 * -ENOMEM. Does not suspend. */
int cio_http_router_use(cio_http_router *rt, cio_http_middleware fn, void *arg);

/* The handler to give cio_http_server_start with the router as `arg`. */
int cio_http_router_handler(cio_http_req *r, cio_http_writer *w, void *rt);

/* A logging middleware: one line per request, "PEER METHOD TARGET STATUS
 * BYTES DURATION_US", to the file descriptor in `*(int *)arg` (written
 * with one write(2), which regular files and terminals take at once). */
int cio_http_log_middleware(cio_http_req *r, cio_http_writer *w,
                            const cio_http_next *next, void *arg);

/* The status of the response so far, and body bytes written. */
int cio_http_writer_status_code(const cio_http_writer *w);
uint64_t cio_http_writer_bytes(const cio_http_writer *w);

/* ---- Static files ------------------------------------------------------- */

typedef struct cio_http_static cio_http_static;

/* Serve the files under directory `root` (aiohttp's add_static). The path
 * served is the route parameter "path" when the route has one (as in
 * "/static/{path...}"), else the request path. Never outside `root`:
 * ".." segments (also percent-encoded) are refused with 403, NUL bytes
 * with 400, and symbolic links leading out of `root` with 403 (the file is
 * opened with openat2 RESOLVE_BENEATH). GET and HEAD only (405). Supports
 * ETag / If-None-Match and Last-Modified / If-Modified-Since (304), byte
 * ranges (206: one range as is, up to 16 as multipart/byteranges; 416
 * when none is satisfiable; more, overlapping or malformed ranges get the
 * whole file), and index.html for a directory. On plain connections on
 * the epoll backend the file's bytes go by sendfile(2). 0; -ENOENT / -ENOTDIR for a bad root; -ENOMEM. Does not
 * suspend. */
int cio_http_static_new(cio_http_static **out, const char *root);
void cio_http_static_free(cio_http_static *st);
/* The handler, with the cio_http_static as `arg`. */
int cio_http_static_handler(cio_http_req *r, cio_http_writer *w, void *st);

/* ==== Client ============================================================ */

typedef struct cio_http_client cio_http_client;
typedef struct cio_http_response cio_http_response;

typedef struct cio_http_client_opts {
    size_t max_per_host;          /* connections per host:port; 0: 8 */
    size_t max_total;             /* connections in all; 0: 64 */
    int64_t idle_timeout;         /* close pooled connections idle this long;
                                   * 0: 30 s */
    int64_t connect_timeout;      /* 0: 10 s */
    int64_t head_timeout;         /* request sent to response head; 0: 30 s */
    int64_t body_timeout;         /* the whole body; 0: 60 s */
    int64_t timeout;              /* whole call, redirects included; 0: none */
    int max_redirects;            /* 0: 10; -1: do not follow */
    bool allow_insecure_redirect; /* follow https -> http */
    bool no_decompress;           /* keep gzip/deflate bodies as sent */
    size_t max_body;              /* buffered bodies; 0: 64 MiB */
    size_t max_head;              /* response head; 0: 64 KiB */
    /* The client context for https:// (borrowed: free it after the
     * client). NULL: a default context made at the first https request. */
    cio_tls_ctx *tls;
} cio_http_client_opts;

/* A client with its connection pool. `opts` NULL: the defaults. The
 * caller closes it with cio_http_client_close. 0; -EINVAL (opts->tls
 * without OpenSSL); -ENOMEM; CIO_ENOTASK. Does not suspend. */
int cio_http_client_new(cio_http_client **out,
                        const cio_http_client_opts *opts);
/* Close every pooled connection and free the client. Responses still
 * open must be freed first (-EBUSY otherwise, and nothing is freed).
 * 0; NULL gives 0. Suspends (briefly: it closes the idle connections and
 * the pools' maintenance tasks), and completes even when cancelled. */
int cio_http_client_close(cio_http_client *c);

/* For tests and monitoring: the idle connections in the pools now, and
 * the connections opened since the client was made. Do not suspend. */
size_t cio_http_client_idle(const cio_http_client *c);
uint64_t cio_http_client_connects(const cio_http_client *c);

typedef struct cio_http_req_opts {
    const cio_http_header *headers; /* extra headers (checked) */
    size_t nheaders;
    const void *body; /* request body with Content-Length */
    size_t body_len;
    /* Or a streamed body sent chunked: `body_fn` fills `buf` and returns
     * the count, 0 at the end, or a negative error that aborts the
     * request. May suspend. Not replayed on redirects: a 307/308 then
     * comes back as the response. */
    ssize_t (*body_fn)(void *arg, void *buf, size_t n);
    void *body_arg;
    /* Return after the head: read the body with cio_http_response_read. */
    bool stream;
    int64_t timeout; /* overrides the client's `timeout`; 0: keep it */
} cio_http_req_opts;

/* Send `method` to the absolute http:// or https:// URL `url` and read
 * the response.
 * `opts` NULL: no body, no extra headers. The response is the caller's:
 * free it with cio_http_response_free. Redirects (301, 302, 303, 307,
 * 308) are followed up to max_redirects (303, and 301/302 after POST,
 * become GET without body). A connection from the pool that turns out
 * closed by the server before answering is replaced once, transparently,
 * for idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS, TRACE).
 * Returns 0 for any HTTP status (check cio_http_response_status);
 * -EINVAL for a bad URL, method or header; -EPROTONOSUPPORT for a
 * scheme other than http and https (or https without OpenSSL);
 * CIO_ENOTFOUND and the other lookup errors (cio/dns.h); -ECONNREFUSED
 * and other connect errors; CIO_ETLS / CIO_ECERT for a failed
 * handshake; -ETIMEDOUT when a phase or the whole call
 * runs out of time; CIO_EHTTP for a malformed response; -EMSGSIZE for a
 * head or body above the limits; CIO_EREDIRECTS; -EPERM for an https ->
 * http redirect not allowed; CIO_EOF if the server closed mid-response;
 * -ECANCELED; -ENOMEM. Suspends. */
int cio_http_request(cio_http_client *c, cio_http_response **out,
                     const char *method, const char *url,
                     const cio_http_req_opts *opts);

/* GET `url`, body buffered. As cio_http_request. Suspends. */
int cio_http_get(cio_http_client *c, cio_http_response **out, const char *url);
/* POST `body` as `content_type` (NULL: none). Suspends. */
int cio_http_post(cio_http_client *c, cio_http_response **out, const char *url,
                  const char *content_type, const void *body, size_t len);

/* The status code; the final URL (after redirects). */
int cio_http_response_status(const cio_http_response *r);
const char *cio_http_response_url(const cio_http_response *r);
/* The first value of header `name` (any case) or NULL; the count and
 * header `i` as cio_http_req_header_at. */
const char *cio_http_response_header(const cio_http_response *r,
                                     const char *name);
size_t cio_http_response_header_count(const cio_http_response *r);
int cio_http_response_header_at(const cio_http_response *r, size_t i,
                                const char **name, const char **value);
/* The buffered body (decoded), NUL-terminated; empty for a streamed
 * response. Owned by the response. */
const char *cio_http_response_body(const cio_http_response *r, size_t *len);

/* Read a streamed body (decoded): the count, 0 at the end; -ETIMEDOUT
 * after body_timeout; CIO_EHTTP for a malformed body or bad gzip data;
 * CIO_EOF when the server closed mid-body; -ECANCELED (the connection
 * is then discarded). On a buffered response returns 0. Suspends. */
ssize_t cio_http_response_read(cio_http_response *r, void *buf, size_t n);

/* Free the response. A connection whose body was read to its end goes
 * back to the pool; one with unread body is closed. NULL is ignored. Does
 * not suspend. */
void cio_http_response_free(cio_http_response *r);

/* ---- Concurrent fetching ------------------------------------------------ */

/* One URL for cio_http_fetch_all and what became of it. */
typedef struct cio_http_fetch {
    const char *url; /* in */
    int result;      /* out: 0 or the last error (a negative code) */
    int status;      /* out: last HTTP status, 0 when none */
    int attempts;    /* out: requests made */
    char *body;      /* out: the body (NUL-terminated), or NULL */
    size_t body_len; /* out */
} cio_http_fetch;

typedef struct cio_http_fetch_opts {
    size_t concurrency;  /* requests in flight; 0: 8 */
    int64_t timeout;     /* per attempt; 0: 30 s */
    int retries;         /* retries after the first attempt; 0: none */
    int64_t backoff;     /* first backoff; 0: 100 ms; doubles per retry */
    int64_t backoff_max; /* 0: 10 s */
} cio_http_fetch_opts;

/* GET every `items[i].url` with at most `concurrency` in flight (asyncio
 * gather + Semaphore + retry, in one call). An attempt fails on an
 * error, or a status of 500 and above or 429 (result CIO_ESERVER); a
 * failed attempt is retried after a backoff drawn uniformly from [b/2, b]
 * (b doubling from `backoff` up to `backoff_max`: "equal jitter"), except
 * for errors that retrying cannot fix (-EINVAL, -EPROTONOSUPPORT,
 * CIO_EREDIRECTS, -EPERM). Other statuses (404 ...) are final with
 * result 0. Results are in `items`, in input order; free the bodies with
 * cio_http_fetch_release. Returns 0 when every URL succeeded, else the
 * count of failed ones (> 0); -ECANCELED if the caller was cancelled
 * (every request is cancelled and awaited first); -EINVAL; -ENOMEM.
 * Suspends. */
int cio_http_fetch_all(cio_http_client *c, cio_http_fetch *items, size_t n,
                       const cio_http_fetch_opts *opts);
/* Free the bodies of `items` and set them NULL. */
void cio_http_fetch_release(cio_http_fetch *items, size_t n);

#ifdef __cplusplus
}
#endif
#endif
