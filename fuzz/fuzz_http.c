/* libFuzzer target for the HTTP/1.1 server's request path: llhttp in
 * strict mode, head and body limits, chunked bodies, keep-alive and
 * pipelining, Expect: 100-continue, and the router.
 *
 * Input layout (missing bytes read as 0):
 *   byte 0        server options: bit 0 max_head 256, bit 1 max_body 64,
 *                 bit 2 max_headers 4, bit 3 the handler reads no body
 *   byte 1        number of chunks (mod MAX_CHUNKS + 1)
 *   chunk sizes   one byte each; the last chunk takes what is left
 *   content       the rest: the bytes the client sends
 *
 * Each input starts a server on a Unix socket with a router whose routes
 * echo the method, the path and the body length (a middleware notes each
 * request's method). A client task connects,
 * sends the content chunk by chunk (yielding between chunks), shuts down
 * its write side and reads until the server closes. Invariants: the loop
 * ends; the server's output parses as a sequence of complete HTTP/1.1
 * responses, each starting with "HTTP/1.1 " and three digits; the final
 * responses are no more than the requests the handler saw plus one error
 * answer; and every cio allocation made during the input is freed. Any
 * violation traps (ASan and UBSan report the rest). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#include <cio.h>

#include "fuzz_input.h"
#include "fuzz_peer.h"

#define MAX_CHUNKS 15

#define CHECK(c)                                                            \
    do {                                                                    \
        if (!(c))                                                           \
            __builtin_trap();                                               \
    } while (0)

long cio__alloc_live(void);

typedef struct fuzz_ctx {
    unsigned flags;
    size_t chunks[MAX_CHUNKS + 1];
    size_t nchunks;
    const unsigned char *content;
    size_t len;
    char path[64];
    cio_addr addr;
    /* What the handler saw, in order: whether each request was HEAD. */
    bool *head;
    size_t nreq, capreq;
    fuzz_output out; /* the server's output */
} fuzz_ctx;

static void parse(fuzz_ctx *x, const uint8_t *data, size_t size)
{
    fuzz_cursor c = {data, size};
    x->flags = fuzz_next(&c);
    fuzz_split(&c, MAX_CHUNKS, &x->content, &x->len, x->chunks,
               &x->nchunks);
}

/* ---- The server side ----------------------------------------------------- */

static void record(fuzz_ctx *x, bool head)
{
    if (x->nreq == x->capreq) {
        x->capreq = x->capreq ? x->capreq * 2 : 64;
        x->head = realloc(x->head, x->capreq * sizeof *x->head);
        CHECK(x->head != NULL);
    }
    x->head[x->nreq++] = head;
}

static int echo(cio_http_req *r, cio_http_writer *w, void *arg)
{
    fuzz_ctx *x = arg;
    const char *m = cio_http_req_method(r);
    CHECK(cio_http_req_path(r)[0] == '/' || strcmp(m, "OPTIONS") == 0);
    CHECK(cio_http_req_version(r) == 10 || cio_http_req_version(r) == 11);
    size_t blen = 0;
    if (!(x->flags & 8)) {
        const char *body = NULL;
        int rc = cio_http_req_body(r, &body, &blen, 0);
        if (rc < 0)
            return rc;
        CHECK(body != NULL && body[blen] == '\0');
        int64_t cl = cio_http_req_content_length(r);
        CHECK(cl < 0 || (uint64_t)cl == blen);
    }
    char line[160];
    int n = snprintf(line, sizeof line, "%s %.64s %zu %s\n", m,
                     cio_http_req_path(r), blen,
                     cio_http_req_param(r, "rest") ? "rest" : "-");
    CHECK(n > 0);
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    return cio_http_send(w, 200, "text/plain", line, len);
}

static int teapot(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    CHECK(cio_http_req_param(r, "id") != NULL);
    cio_http_writer_header(w, "X-Id", "1");
    return cio_http_send(w, 418, NULL, "tea", 3);
}

/* Every routed request passes here, the router's own 404 and 405 too. */
static int recorder(cio_http_req *r, cio_http_writer *w,
                    const cio_http_next *next, void *arg)
{
    record(arg, strcmp(cio_http_req_method(r), "HEAD") == 0);
    int rc = cio_http_next_call(next, r, w);
    int st = cio_http_writer_status_code(w);
    CHECK(st >= 100 && st <= 999);
    return rc;
}

/* ---- The client side ----------------------------------------------------- */

static int sender(void *arg)
{
    fuzz_ctx *x = arg;
    int fd = -1;
    int rc = cio_connect_addr(&fd, &x->addr);
    CHECK(rc == 0);
    fuzz_exchange(fd, x->content, x->chunks, x->nchunks, &x->out);
    cio_close(fd);
    return 0;
}

/* Response parsing with llhttp: the parser pauses after each message so
 * that the next one can be checked to start with a status line. */
typedef struct rstate {
    fuzz_ctx *x;
    size_t finals; /* final (non-1xx) responses seen */
} rstate;

static int on_headers_complete(llhttp_t *p)
{
    rstate *st = p->data;
    CHECK(p->http_major == 1 && p->http_minor == 1);
    CHECK(p->status_code >= 100 && p->status_code <= 599);
    if (p->status_code < 200)
        return 0;
    size_t i = st->finals++;
    /* A response to HEAD has no body. */
    return i < st->x->nreq && st->x->head[i] ? 1 : 0;
}

static int on_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static bool digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void check_output(fuzz_ctx *x)
{
    llhttp_settings_t set;
    llhttp_settings_init(&set);
    set.on_headers_complete = on_headers_complete;
    set.on_message_complete = on_message_complete;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &set);
    rstate st = {x, 0};
    p.data = &st;
    const char *s = (const char *)x->out.p;
    size_t off = 0;
    while (off < x->out.len) {
        CHECK(x->out.len - off >= 13);
        CHECK(memcmp(s + off, "HTTP/1.1 ", 9) == 0);
        CHECK(digit((unsigned char)s[off + 9]) &&
              digit((unsigned char)s[off + 10]) &&
              digit((unsigned char)s[off + 11]) && s[off + 12] == ' ');
        llhttp_errno_t e = llhttp_execute(&p, s + off, x->out.len - off);
        if (e == HPE_OK) {
            /* No message end in the rest: it must end at EOF. */
            CHECK(llhttp_finish(&p) == HPE_OK);
            break;
        }
        CHECK(e == HPE_PAUSED);
        const char *end = llhttp_get_error_pos(&p);
        CHECK(end > s + off && end <= s + x->out.len);
        off = (size_t)(end - s);
        llhttp_resume(&p);
    }
    /* Every final response answers a request the handler saw, except one
     * error answer for a request it never saw (the connection then ends). */
    CHECK(st.finals <= x->nreq + 1);
}

/* ---- The run ------------------------------------------------------------- */

static int fuzz_main(void *arg)
{
    fuzz_ctx *x = arg;
    cio_http_router *rt = NULL;
    CHECK(cio_http_router_new(&rt) == 0);
    CHECK(cio_http_router_use(rt, recorder, x) == 0);
    CHECK(cio_http_router_add(rt, "*", "/t/{id}", teapot, x) == 0);
    CHECK(cio_http_router_add(rt, "GET", "/r/{rest...}", echo, x) == 0);
    CHECK(cio_http_router_add(rt, "*", "/{rest...}", echo, x) == 0);
    cio_http_server_opts o = {
        .idle_timeout = 2 * CIO_SEC,
        .head_timeout = 2 * CIO_SEC,
        .body_timeout = 2 * CIO_SEC,
        .write_timeout = 2 * CIO_SEC,
        .max_head = (x->flags & 1) ? 256 : 0,
        .max_body = (x->flags & 2) ? 64 : 0,
        .max_headers = (x->flags & 4) ? 4 : 0,
        .server = "fuzz",
    };
    unlink(x->path);
    cio_http_server *hs = NULL;
    CHECK(cio_http_server_start(&hs, &x->addr, cio_http_router_handler, rt,
                                &o) == 0);
    cio_task *t = NULL;
    CHECK(cio_spawn(&t, sender, x) == 0);
    CHECK(cio_task_join(t) == 0);
    cio_task_free(t);
    CHECK(cio_http_server_close(hs, CIO_SEC) == 0);
    cio_http_router_free(rt);
    unlink(x->path);
    check_output(x);
    return 0;
}

static void quiet(const char *line, void *arg)
{
    (void)line;
    (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        once = true;
        cio_set_reporter(quiet, NULL);
    }
    fuzz_ctx x;
    memset(&x, 0, sizeof x);
    parse(&x, data, size);
    snprintf(x.path, sizeof x.path, "/tmp/cio-fuzz-http-%d.sock",
             (int)getpid());
    CHECK(cio_addr_unix(&x.addr, x.path) == 0);
    long before = cio__alloc_live();
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 0;
    CHECK(cio_run_config(&cfg, fuzz_main, &x) == 0);
    CHECK(cio__alloc_live() == before);
    /* CIO_FUZZ_DUMP=1 shows the server's output (to check the seeds). */
    if (getenv("CIO_FUZZ_DUMP") != NULL)
        fwrite(x.out.p, 1, x.out.len, stderr);
    free(x.head);
    free(x.out.p);
    return 0;
}
