/* WebSocket (RFC 6455): the opening handshake on the HTTP server and
 * client, frames, fragmentation, control frames and the closing
 * handshake. */
#include <strings.h>
#include <sys/random.h>

#include "cio/websocket.h"
#include "server_int.h"
#ifdef CIO_HAVE_OPENSSL
#include "cio/tls.h"
#endif
#ifdef CIO_HAVE_CARES
#include "cio/dns.h"
#endif

#define DEF_MAX_MESSAGE ((size_t)16 * 1024 * 1024)
#define DEF_CLOSE_TIMEOUT (5 * CIO_SEC)
#define DEF_CONNECT (10 * CIO_SEC)
#define MAX_HEAD 16384
#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum {
    OP_CONT = 0,
    OP_TEXT = 1,
    OP_BIN = 2,
    OP_CLOSE = 8,
    OP_PING = 9,
    OP_PONG = 10
};

struct cio_ws {
    cio_stream *s;
    bool client; /* mask what we send; expect unmasked frames */
    bool close_sent, close_rcvd, broken;
    bool in_frame; /* a frame header was read, its payload not yet */
    int code;
    int64_t recv_timeout;
    size_t max_message;
    int64_t close_timeout;
    hbuf msg;     /* the message being reassembled */
    hbuf out;     /* the frame being built */
    uint64_t rng; /* masking keys (client) */
    cio_tls_ctx *own_tls;
};

/* ---- SHA-1 and base64, for Sec-WebSocket-Accept ---------------------------
 * (RFC 3174; used for the handshake only, never for security). */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

/* SHA-1 of a short message (< 120 bytes: two blocks at most). */
static void sha1(const void *data, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                     0xC3D2E1F0};
    unsigned char buf[128] = {0};
    memcpy(buf, data, n);
    buf[n] = 0x80;
    size_t total = n + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        buf[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64)
        sha1_block(h, buf + off);
    for (int i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The Sec-WebSocket-Accept for `key` into out (29 bytes). */
static void accept_key(const char *key, char out[32])
{
    char cat[96];
    int n = snprintf(cat, sizeof cat, "%s" GUID, key);
    unsigned char d[20];
    sha1(cat, (size_t)n, d);
    base64(d, 20, out);
}

/* A key is the base64 of 16 bytes: 22 characters and "==". */
static bool key_ok(const char *k)
{
    if (k == NULL || strlen(k) != 24 || strcmp(k + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (strchr(b64, k[i]) == NULL || k[i] == '\0')
            return false;
    return true;
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min, cp;
        if ((c & 0xE0) == 0xC0)
            len = 2, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, min = 0x800, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, min = 0x10000, cp = c & 0x07;
        else
            return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* ---- Frames -------------------------------------------------------------- */

static uint32_t next_mask(cio_ws *ws)
{
    uint64_t x = ws->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ws->rng = x;
    return (uint32_t)((x * UINT64_C(2685821657736338717)) >> 32);
}

/* Queue one frame whole, then wait for room. */
static int send_frame(cio_ws *ws, int op, const void *data, size_t n)
{
    hbuf *b = &ws->out;
    b->len = 0;
    int rc = cio__hbuf_reserve(b, n + 14);
    if (rc < 0)
        return rc;
    unsigned char *p = (unsigned char *)b->p;
    size_t h = 0;
    p[h++] = (unsigned char)(0x80 | op);
    unsigned char m = ws->client ? 0x80 : 0;
    if (n < 126) {
        p[h++] = (unsigned char)(m | n);
    } else if (n <= 0xFFFF) {
        p[h++] = m | 126;
        p[h++] = (unsigned char)(n >> 8);
        p[h++] = (unsigned char)n;
    } else {
        p[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            p[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    if (n)
        memcpy(p + h + (ws->client ? 4 : 0), data, n);
    if (ws->client) {
        uint32_t key = next_mask(ws);
        unsigned char k[4] = {(unsigned char)(key >> 24),
                              (unsigned char)(key >> 16),
                              (unsigned char)(key >> 8), (unsigned char)key};
        memcpy(p + h, k, 4);
        h += 4;
        for (size_t i = 0; i < n; i++)
            p[h + i] ^= k[i & 3];
    }
    rc = cio_stream_write(ws->s, p, h + n);
    if (rc == 0)
        rc = cio_stream_drain(ws->s);
    return rc;
}

static int send_close(cio_ws *ws, int code, const char *reason)
{
    if (ws->close_sent)
        return 0;
    ws->close_sent = true;
    unsigned char buf[125];
    size_t n = 0;
    if (code) {
        buf[n++] = (unsigned char)(code >> 8);
        buf[n++] = (unsigned char)code;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 0)
            memcpy(buf + n, reason, rl);
        n += rl;
    }
    return send_frame(ws, OP_CLOSE, buf, n);
}

/* A protocol violation by the peer: close with `code`, report `err`. */
static int violation(cio_ws *ws, int code, int err)
{
    ws->code = code;
    ws->broken = true;
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(ws->close_timeout), 0);
    send_close(ws, code, NULL);
    cio_scope_exit(&sc);
    return err;
}

int cio_ws_send(cio_ws *ws, int type, const void *data, size_t n)
{
    if (ws == NULL || (type != CIO_WS_TEXT && type != CIO_WS_BINARY) ||
        (n && data == NULL))
        return -EINVAL;
    if (type == CIO_WS_TEXT && !utf8_ok(data, n))
        return -EINVAL;
    if (ws->close_sent || ws->close_rcvd || ws->broken)
        return -EPIPE;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    return send_frame(ws, type, data, n);
}

int cio_ws_ping(cio_ws *ws, const void *data, size_t n)
{
    if (ws == NULL || n > 125 || (n && data == NULL))
        return -EINVAL;
    if (ws->close_sent || ws->broken)
        return -EPIPE;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    return send_frame(ws, OP_PING, data, n);
}

int cio_ws_close_code(const cio_ws *ws)
{
    return ws->code;
}

static bool close_code_ok(int c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
           (c >= 3000 && c <= 4999);
}

/* The peer's close frame: check it, answer it. */
static int on_close(cio_ws *ws, const unsigned char *p, size_t n)
{
    ws->close_rcvd = true;
    if (n == 1)
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    int code = n ? p[0] << 8 | p[1] : CIO_WS_NO_STATUS;
    if (n && !close_code_ok(code))
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    if (n > 2 && !utf8_ok(p + 2, n - 2))
        return violation(ws, CIO_WS_INVALID_DATA, CIO_EHTTP);
    ws->code = code;
    /* Echo the code and reason, as most peers do. */
    char reason[124] = "";
    if (n > 2)
        memcpy(reason, p + 2, n - 2);
    send_close(ws, n ? code : 0, reason);
    return CIO_EOF;
}

/* Read a frame header; 0 with the fields, or an error. */
typedef struct fhdr {
    bool fin;
    int op;
    uint64_t len;
    bool masked;
    unsigned char mask[4];
} fhdr;

static int read_header(cio_ws *ws, fhdr *f)
{
    unsigned char h[8];
    ssize_t r = cio_stream_readexactly(ws->s, h, 2, NULL);
    if (r < 0)
        return (int)r;
    ws->in_frame = true;
    f->fin = h[0] & 0x80;
    f->op = h[0] & 0x0F;
    f->masked = h[1] & 0x80;
    f->len = h[1] & 0x7F;
    if (h[0] & 0x70)
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    if (f->masked == ws->client)
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    int ext = f->len == 126 ? 2 : f->len == 127 ? 8 : 0;
    if (ext) {
        r = cio_stream_readexactly(ws->s, h, (size_t)ext, NULL);
        if (r < 0)
            return (int)r;
        f->len = 0;
        for (int i = 0; i < ext; i++)
            f->len = f->len << 8 | h[i];
        /* Lengths use the shortest form; the top bit must be clear. */
        if ((ext == 2 && f->len < 126) || (ext == 8 && f->len <= 0xFFFF) ||
            (f->len >> 63))
            return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    }
    if ((f->op & 8) && (!f->fin || f->len > 125))
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    if (f->masked) {
        r = cio_stream_readexactly(ws->s, f->mask, 4, NULL);
        if (r < 0)
            return (int)r;
    }
    return 0;
}

static int read_payload(cio_ws *ws, const fhdr *f, unsigned char *dst)
{
    if (f->len) {
        ssize_t r = cio_stream_readexactly(ws->s, dst, (size_t)f->len, NULL);
        if (r < 0)
            return (int)r;
    }
    if (f->masked)
        for (uint64_t i = 0; i < f->len; i++)
            dst[i] ^= f->mask[i & 3];
    return 0;
}

/* One frame into the message; > 0: a complete message of that type. */
static int read_frame(cio_ws *ws, int *type)
{
    fhdr f;
    int rc = read_header(ws, &f);
    if (rc < 0)
        return rc;
    if (f.op & 8) {
        unsigned char ctl[125];
        rc = read_payload(ws, &f, ctl);
        if (rc < 0)
            return rc;
        ws->in_frame = false;
        if (f.op == OP_CLOSE)
            return on_close(ws, ctl, (size_t)f.len);
        if (f.op == OP_PING && !ws->close_sent)
            return send_frame(ws, OP_PONG, ctl, (size_t)f.len);
        if (f.op == OP_PING || f.op == OP_PONG)
            return 0;
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    }
    if (f.op > OP_BIN || (f.op == OP_CONT) != (*type != 0))
        return violation(ws, CIO_WS_PROTOCOL_ERROR, CIO_EHTTP);
    if (f.len > ws->max_message - ws->msg.len)
        return violation(ws, CIO_WS_TOO_BIG, -EMSGSIZE);
    if (f.op != OP_CONT)
        *type = f.op;
    rc = cio__hbuf_reserve(&ws->msg, (size_t)f.len);
    if (rc < 0)
        return rc;
    rc = read_payload(ws, &f, (unsigned char *)ws->msg.p + ws->msg.len);
    if (rc < 0)
        return rc;
    ws->in_frame = false;
    ws->msg.len += (size_t)f.len;
    ws->msg.p[ws->msg.len] = '\0';
    if (!f.fin)
        return 0;
    if (*type == OP_TEXT &&
        !utf8_ok((const unsigned char *)ws->msg.p, ws->msg.len))
        return violation(ws, CIO_WS_INVALID_DATA, CIO_EHTTP);
    return *type;
}

static int recv_loop(cio_ws *ws, int *type)
{
    for (;;) {
        int rc = read_frame(ws, type);
        if (rc != 0)
            return rc;
    }
}

int cio_ws_recv(cio_ws *ws, const void **data, size_t *len)
{
    if (ws == NULL || data == NULL || len == NULL)
        return -EINVAL;
    if (ws->close_rcvd)
        return CIO_EOF;
    if (ws->broken)
        return -EPIPE;
    ws->msg.len = 0;
    int type = 0;
    cio_scope sc;
    int rc = cio_scope_enter(
        &sc,
        ws->recv_timeout > 0 ? cio_deadline_after(ws->recv_timeout) : CIO_NEVER,
        0);
    if (rc < 0)
        return rc;
    rc = recv_loop(ws, &type);
    int sx = cio_scope_exit(&sc);
    if (rc == -ECANCELED && sx == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    if (rc > 0) {
        *data = ws->msg.p;
        *len = ws->msg.len;
        return rc;
    }
    if (rc == CIO_EOF || rc == CIO_EINCOMPLETE) {
        if (!ws->close_rcvd)
            ws->code = CIO_WS_ABNORMAL; /* closed without a close frame */
        ws->close_rcvd = true;
        return CIO_EOF;
    }
    /* Interrupted between messages the WebSocket stays usable; inside a
     * frame or a fragmented message it is not. */
    bool boundary =
        (rc == -ECANCELED || rc == -ETIMEDOUT) && !ws->in_frame && type == 0;
    if (!boundary) {
        ws->broken = true;
        if (ws->code == 0)
            ws->code = CIO_WS_ABNORMAL;
    }
    return rc;
}

/* ---- Opening and closing ------------------------------------------------- */

static int ws_new(cio_ws **out, cio_stream *s, bool client,
                  const cio_ws_opts *o)
{
    cio_ws *ws = cio__calloc(1, sizeof *ws);
    if (ws == NULL)
        return -ENOMEM;
    ws->s = s;
    ws->client = client;
    ws->max_message = o && o->max_message ? o->max_message : DEF_MAX_MESSAGE;
    ws->close_timeout =
        o && o->close_timeout > 0 ? o->close_timeout : DEF_CLOSE_TIMEOUT;
    ws->recv_timeout = o && o->recv_timeout > 0 ? o->recv_timeout : 0;
    if (getrandom(&ws->rng, sizeof ws->rng, GRND_NONBLOCK) !=
        (ssize_t)sizeof ws->rng)
        ws->rng = (uint64_t)cio_now() ^ (uintptr_t)ws;
    ws->rng |= 1;
    *out = ws;
    return 0;
}

static void ws_free(cio_ws *ws)
{
    cio__hbuf_free(&ws->msg);
    cio__hbuf_free(&ws->out);
#ifdef CIO_HAVE_OPENSSL
    cio_tls_ctx_free(ws->own_tls);
#endif
    cio__free(ws);
}

int cio_ws_close(cio_ws *ws, int code, const char *reason)
{
    if (ws == NULL)
        return 0;
    if (code == 0)
        code = CIO_WS_NORMAL;
    int rc = 0;
    if ((reason && (strlen(reason) > 123 ||
                    !utf8_ok((const unsigned char *)reason, strlen(reason)))) ||
        !close_code_ok(code))
        reason = NULL, code = CIO_WS_NORMAL;
    /* The handshake is bounded by close_timeout, and runs even for a
     * cancelled caller so that the peer learns why. */
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(ws->close_timeout),
                    CIO_SCOPE_SHIELD);
    if (!ws->broken) {
        rc = send_close(ws, code, reason);
        while (rc == 0 && !ws->close_rcvd && !ws->broken) {
            const void *d;
            size_t n;
            int r = cio_ws_recv(ws, &d, &n);
            if (r < 0 && r != CIO_EOF)
                rc = r;
        }
    }
    if (ws->client)
        cio_stream_close(ws->s);
    cio_scope_exit(&sc);
    ws_free(ws);
    return rc == -ECANCELED ? -ETIMEDOUT : rc;
}

int cio_ws_accept(cio_ws **out, cio_http_req *r, cio_http_writer *w,
                  const cio_ws_opts *opts)
{
    if (out == NULL || r == NULL || w == NULL)
        return -EINVAL;
    if (w->started)
        return -EALREADY;
    const char *up = cio_http_req_header(r, "Upgrade");
    const char *conn = cio_http_req_header(r, "Connection");
    const char *ver = cio_http_req_header(r, "Sec-WebSocket-Version");
    const char *key = cio_http_req_header(r, "Sec-WebSocket-Key");
    if (strcmp(r->method, "GET") != 0 || r->version != 11 || !r->c->msg_done ||
        up == NULL || !cio__http_has_token(up, "websocket") || conn == NULL ||
        !cio__http_has_token(conn, "upgrade") || !key_ok(key)) {
        cio_http_writer_close(w);
        cio_http_send(w, 400, "text/plain", "Bad WebSocket handshake\n", 24);
        return -EPROTO;
    }
    if (ver == NULL || strcmp(ver, "13") != 0) {
        cio_http_writer_close(w);
        cio_http_writer_header(w, "Sec-WebSocket-Version", "13");
        cio_http_send(w, 426, "text/plain", "Upgrade Required\n", 17);
        return -EPROTO;
    }
    const char *offered = cio_http_req_header(r, "Sec-WebSocket-Protocol");
    const char *proto = opts && opts->protocol && offered &&
                                cio__http_has_token(offered, opts->protocol)
                            ? opts->protocol
                            : NULL;
    if (proto && cio_http_header_check("Sec-WebSocket-Protocol", proto) < 0)
        return -EINVAL;
    char acc[32];
    accept_key(key, acc);
    hconn *c = r->c;
    hbuf *b = &c->out;
    b->len = 0;
    int rc = cio__hbuf_addf(b,
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                            "websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                            acc, proto ? "Sec-WebSocket-Protocol: " : "",
                            proto ? proto : "", proto ? "\r\n" : "");
    cio_ws *ws = NULL;
    if (rc == 0)
        rc = ws_new(&ws, c->s, false, opts);
    /* The connection is the WebSocket's now: nothing more of HTTP. */
    w->started = w->ended = true;
    w->status = 101;
    c->keep_alive = false;
    if (rc == 0)
        rc = cio__http_conn_send(c, b->p, b->len);
    if (rc < 0) {
        if (ws)
            ws_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

/* ---- Client -------------------------------------------------------------- */

static int ws_open(cio_ws *ws, const http_url *u, const cio_ws_opts *o,
                   cio_stream **s)
{
    if (u->https) {
#ifdef CIO_HAVE_OPENSSL
        cio_tls_ctx *ctx = o && o->tls ? o->tls : NULL;
        if (ctx == NULL) {
            int rc = cio_tls_client_ctx_new(&ws->own_tls, NULL);
            if (rc < 0)
                return rc;
            ctx = ws->own_tls;
        }
        return cio_tls_connect(s, ctx, u->host, u->port, NULL, NULL);
#else
        (void)ws, (void)o;
        return -EPROTONOSUPPORT;
#endif
    }
#ifdef CIO_HAVE_CARES
    return cio_open_connection_host(s, u->host, u->port, NULL);
#else
    int rc = cio_open_connection(s, u->host, u->port, NULL);
    return rc == -EINVAL ? CIO_ENOTFOUND : rc;
#endif
}

/* Check the server's answer to the opening handshake. */
static int check_answer(char *head, const char *want_accept, int *status)
{
    int st = 0;
    if (sscanf(head, "HTTP/1.1 %d ", &st) != 1)
        return CIO_EHTTP;
    if (status)
        *status = st;
    if (st != 101)
        return CIO_EHTTP;
    bool up = false, conn = false, acc = false;
    char *save = NULL;
    strtok_r(head, "\r\n", &save);
    for (char *l = strtok_r(NULL, "\r\n", &save); l;
         l = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(l, ':');
        if (colon == NULL)
            return CIO_EHTTP;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(l, "upgrade") == 0)
            up = cio__http_has_token(v, "websocket");
        else if (strcasecmp(l, "connection") == 0)
            conn = cio__http_has_token(v, "upgrade");
        else if (strcasecmp(l, "sec-websocket-accept") == 0)
            acc = strcmp(v, want_accept) == 0;
    }
    return up && conn && acc ? 0 : CIO_EHTTP;
}

static int handshake(cio_ws *ws, const http_url *u, const cio_ws_opts *o,
                     int *status)
{
    unsigned char raw[16];
    for (int i = 0; i < 4; i++) {
        uint32_t m = next_mask(ws);
        memcpy(raw + 4 * i, &m, 4);
    }
    char key[32], acc[32];
    base64(raw, 16, key);
    accept_key(key, acc);
    hbuf b = {0};
    bool v6 = strchr(u->host, ':') != NULL;
    int rc = cio__hbuf_addf(&b,
                            "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: "
                            "websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n",
                            u->target, v6 ? "[" : "", u->host, v6 ? "]" : "",
                            u->port, key);
    if (rc == 0 && o && o->protocol)
        rc =
            cio__hbuf_add3(&b, "Sec-WebSocket-Protocol: ", o->protocol, "\r\n");
    for (size_t i = 0; rc == 0 && o && i < o->nheaders; i++)
        rc = cio__hbuf_addf(&b, "%s: %s\r\n", o->headers[i].name,
                            o->headers[i].value);
    if (rc == 0)
        rc = cio__hbuf_add(&b, "\r\n", 2);
    if (rc == 0)
        rc = cio_stream_write(ws->s, b.p, b.len);
    if (rc == 0)
        rc = cio_stream_flush(ws->s);
    cio__hbuf_free(&b);
    if (rc < 0)
        return rc;
    char *head = cio__malloc(MAX_HEAD + 1);
    if (head == NULL)
        return -ENOMEM;
    ssize_t n =
        cio_stream_readuntil(ws->s, head, MAX_HEAD, "\r\n\r\n", 4, NULL);
    if (n >= 0) {
        head[n] = '\0';
        rc = check_answer(head, acc, status);
    } else {
        rc = n == -EMSGSIZE         ? -EMSGSIZE
             : n == CIO_EINCOMPLETE ? CIO_EOF
                                    : (int)n;
    }
    cio__free(head);
    return rc;
}

int cio_ws_connect(cio_ws **out, const char *url, const cio_ws_opts *opts,
                   int *status)
{
    if (out == NULL || url == NULL)
        return -EINVAL;
    for (size_t i = 0; opts && i < opts->nheaders; i++)
        if (cio_http_header_check(opts->headers[i].name,
                                  opts->headers[i].value) < 0)
            return -EINVAL;
    if (opts && opts->protocol &&
        cio_http_header_check("Sec-WebSocket-Protocol", opts->protocol) < 0)
        return -EINVAL;
    char *hurl = NULL;
    if (strncasecmp(url, "ws://", 5) == 0 ||
        strncasecmp(url, "wss://", 6) == 0) {
        size_t n = strlen(url);
        hurl = cio__malloc(n + 3);
        if (hurl == NULL)
            return -ENOMEM;
        snprintf(hurl, n + 3, "http%s", url + 2);
    } else {
        return strstr(url, "://") ? -EPROTONOSUPPORT : -EINVAL;
    }
    http_url u;
    int rc = cio__http_url_parse(&u, hurl);
    cio__free(hurl);
    if (rc < 0)
        return rc;
    cio_ws *ws;
    rc = ws_new(&ws, NULL, true, opts);
    if (rc < 0) {
        cio__http_url_free(&u);
        return rc;
    }
    int64_t t =
        opts && opts->connect_timeout > 0 ? opts->connect_timeout : DEF_CONNECT;
    cio_scope sc;
    rc = cio_scope_enter(&sc, cio_deadline_after(t), 0);
    if (rc == 0) {
        rc = ws_open(ws, &u, opts, &ws->s);
        if (rc == 0)
            rc = handshake(ws, &u, opts, status);
        int sx = cio_scope_exit(&sc);
        if (rc == -ECANCELED && sx == -ETIMEDOUT)
            rc = -ETIMEDOUT;
    }
    cio__http_url_free(&u);
    if (rc < 0) {
        if (ws->s) {
            cio_scope sh;
            cio_scope_enter(&sh, cio_deadline_after(0), CIO_SCOPE_SHIELD);
            cio_stream_close(ws->s);
            cio_scope_exit(&sh);
        }
        ws_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}
