/* libFuzzer target for the WebSocket server side: frame headers, masking,
 * fragmentation, control frames, UTF-8 checks and the closing handshake.
 *
 * Input layout (missing bytes read as 0):
 *   byte 0        options: bit 0 max_message 64, bit 1 echo each message
 *   byte 1        number of chunks (mod MAX_CHUNKS + 1)
 *   chunk sizes   one byte each; the last chunk takes what is left
 *   content       the rest: the frames the client sends
 *
 * Each input starts an HTTP server on a Unix socket whose handler accepts
 * the WebSocket (cio_ws_accept) and receives messages until an error or
 * the end, then closes it. A client task sends a valid upgrade request,
 * then the content chunk by chunk, shuts down its write side and reads
 * until the server closes. Invariants: the loop ends; every message is
 * text or binary, within max_message, and text is UTF-8; every error is
 * one that cio_ws_recv documents, with its close code; the server's output
 * is the 101 answer with the right Sec-WebSocket-Accept followed by
 * well-formed unmasked frames (FIN set, no RSV bits, known opcodes,
 * shortest length form, control payloads <= 125 bytes, a valid close code,
 * nothing after the close frame), one data frame per echoed message; and
 * every cio allocation made during the input is freed. Any violation
 * traps (ASan and UBSan report the rest). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cio.h>

#include "fuzz_input.h"
#include "fuzz_peer.h"
#include <cio/websocket.h>

#define MAX_CHUNKS 15
#define SMALL_MESSAGE 64

#define CHECK(c)                                                            \
    do {                                                                    \
        if (!(c))                                                           \
            __builtin_trap();                                               \
    } while (0)

long cio__alloc_live(void);

static const char upgrade[] = "GET /ws HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
/* RFC 6455 1.3: the answer to that key. */
static const char accept_line[] =
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

typedef struct fuzz_ctx {
    unsigned flags;
    size_t chunks[MAX_CHUNKS + 1];
    size_t nchunks;
    const unsigned char *content;
    size_t len;
    char path[64];
    cio_addr addr;
    bool accepted;
    size_t messages, echoed;
    int last; /* cio_ws_recv's final result */
    fuzz_output out; /* the server's output */
} fuzz_ctx;

static void parse(fuzz_ctx *x, const uint8_t *data, size_t size)
{
    fuzz_cursor c = {data, size};
    x->flags = fuzz_next(&c);
    fuzz_split(&c, MAX_CHUNKS, &x->content, &x->len, x->chunks,
               &x->nchunks);
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * written independently of the library's check. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* ---- The server side ----------------------------------------------------- */

static int handler(cio_http_req *r, cio_http_writer *w, void *arg)
{
    fuzz_ctx *x = arg;
    size_t max = (x->flags & 1) ? SMALL_MESSAGE : 0;
    cio_ws_opts o = {.max_message = max, .close_timeout = CIO_SEC};
    cio_ws *ws = NULL;
    CHECK(cio_ws_accept(&ws, r, w, &o) == 0);
    x->accepted = true;
    int rc;
    for (;;) {
        const void *data = NULL;
        size_t len = 0;
        rc = cio_ws_recv(ws, &data, &len);
        if (rc < 0)
            break;
        CHECK(rc == CIO_WS_TEXT || rc == CIO_WS_BINARY);
        CHECK(len == 0 || data != NULL);
        CHECK(max == 0 || len <= max);
        CHECK(rc != CIO_WS_TEXT || utf8_valid(data, len));
        CHECK(cio_ws_close_code(ws) == 0);
        x->messages++;
        if (x->flags & 2) {
            int s = cio_ws_send(ws, rc, data, len);
            CHECK(s == 0 || s == -EPIPE || s == -ECONNRESET);
            if (s == 0)
                x->echoed++;
        }
    }
    x->last = rc;
    int code = cio_ws_close_code(ws);
    switch (rc) {
    case CIO_EOF:
        CHECK(code == CIO_WS_NO_STATUS || code == CIO_WS_ABNORMAL ||
              (code >= 1000 && code <= 1003) ||
              (code >= 1007 && code <= 1011) ||
              (code >= 3000 && code <= 4999));
        break;
    case CIO_EHTTP:
        CHECK(code == CIO_WS_PROTOCOL_ERROR || code == CIO_WS_INVALID_DATA);
        break;
    case -EMSGSIZE:
        CHECK(code == CIO_WS_TOO_BIG);
        break;
    default:
        /* The peer went away while the server was answering. */
        CHECK(rc == -EPIPE || rc == -ECONNRESET);
        break;
    }
    /* After the end every call reports it again and sends nothing. */
    const void *d;
    size_t n;
    int again = cio_ws_recv(ws, &d, &n);
    CHECK(again == CIO_EOF || again == -EPIPE);
    cio_ws_close(ws, 0, NULL);
    return 0;
}

/* ---- The client side ----------------------------------------------------- */

static int client(void *arg)
{
    fuzz_ctx *x = arg;
    int fd = -1;
    CHECK(cio_connect_addr(&fd, &x->addr) == 0);
    CHECK(cio_send_all(fd, upgrade, sizeof upgrade - 1, NULL) >= 0);
    fuzz_exchange(fd, x->content, x->chunks, x->nchunks, &x->out);
    cio_close(fd);
    return 0;
}

static void check_output(fuzz_ctx *x)
{
    CHECK(x->accepted);
    const unsigned char *p = x->out.p;
    size_t n = x->out.len;
    static const char status[] = "HTTP/1.1 101 Switching Protocols\r\n";
    CHECK(n >= sizeof status - 1 && memcmp(p, status, sizeof status - 1) == 0);
    const unsigned char *end = memmem(p, n, "\r\n\r\n", 4);
    CHECK(end != NULL);
    size_t head = (size_t)(end - p) + 4;
    CHECK(memmem(p, head, accept_line, sizeof accept_line - 1) != NULL);
    size_t off = head, data_frames = 0;
    bool closed = false;
    while (off < n) {
        CHECK(!closed); /* nothing after the close frame */
        CHECK(n - off >= 2);
        unsigned b0 = p[off], b1 = p[off + 1];
        off += 2;
        CHECK(b0 & 0x80);         /* FIN: the server never fragments */
        CHECK((b0 & 0x70) == 0);  /* no RSV bits */
        CHECK((b1 & 0x80) == 0);  /* unmasked */
        unsigned op = b0 & 0x0F;
        CHECK(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
        uint64_t len = b1 & 0x7F;
        size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
        if (ext) {
            CHECK(n - off >= ext);
            len = 0;
            for (size_t i = 0; i < ext; i++)
                len = len << 8 | p[off + i];
            off += ext;
            CHECK(ext == 2 ? len >= 126 : len > 0xFFFF && !(len >> 63));
        }
        CHECK(len <= n - off);
        if (op & 8)
            CHECK(len <= 125);
        if (op == 8) {
            closed = true;
            CHECK(len != 1);
            if (len >= 2) {
                int code = p[off] << 8 | p[off + 1];
                CHECK((code >= 1000 && code <= 1003) ||
                      (code >= 1007 && code <= 1011) ||
                      (code >= 3000 && code <= 4999));
                CHECK(utf8_valid(p + off + 2, (size_t)len - 2));
            }
        }
        if (op == 1) {
            CHECK(utf8_valid(p + off, (size_t)len));
        }
        if (op == 1 || op == 2)
            data_frames++;
        off += (size_t)len;
    }
    CHECK(data_frames == x->echoed);
    CHECK(x->echoed <= x->messages);
}

/* ---- The run ------------------------------------------------------------- */

static int fuzz_main(void *arg)
{
    fuzz_ctx *x = arg;
    cio_http_server_opts o = {
        .idle_timeout = 2 * CIO_SEC,
        .head_timeout = 2 * CIO_SEC,
        .body_timeout = 2 * CIO_SEC,
        .write_timeout = 2 * CIO_SEC,
    };
    unlink(x->path);
    cio_http_server *hs = NULL;
    CHECK(cio_http_server_start(&hs, &x->addr, handler, x, &o) == 0);
    cio_task *t = NULL;
    CHECK(cio_spawn(&t, client, x) == 0);
    CHECK(cio_task_join(t) == 0);
    cio_task_free(t);
    CHECK(cio_http_server_close(hs, CIO_SEC) == 0);
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
    snprintf(x.path, sizeof x.path, "/tmp/cio-fuzz-ws-%d.sock", (int)getpid());
    CHECK(cio_addr_unix(&x.addr, x.path) == 0);
    long before = cio__alloc_live();
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 0;
    CHECK(cio_run_config(&cfg, fuzz_main, &x) == 0);
    CHECK(cio__alloc_live() == before);
    if (getenv("CIO_FUZZ_DUMP") != NULL)
        fprintf(stderr, "messages %zu echoed %zu last %d output %zu bytes\n",
                x.messages, x.echoed, x.last, x.out.len);
    free(x.out.p);
    return 0;
}
