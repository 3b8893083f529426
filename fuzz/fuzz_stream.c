/* libFuzzer target for the stream reader (readline, readuntil,
 * readexactly, read, peek / consume).
 *
 * Input layout (missing bytes read as 0):
 *   byte 0        stream limit choice (index into `limits`)
 *   byte 1        number of operations (mod MAX_OPS + 1)
 *   operations    opcode byte, then its arguments:
 *                   0 readline       size
 *                   1 readuntil      size, dlen (1-4), dlen delimiter bytes
 *                   2 readexactly    n
 *                   3 read           n
 *                   4 peek           want, k (consume k % (result + 1))
 *                   5 consume        k
 *                 sizes are decoded by dec_size()
 *   byte          number of chunks (mod MAX_CHUNKS + 1)
 *   chunk sizes   one byte each; the last chunk takes what is left
 *   content       the rest: the bytes the peer sends
 *
 * A writer task sends the content chunk by chunk over a socketpair,
 * yielding between chunks, then shuts down and closes its end. The reader
 * task runs the operations on a stream over the other end and compares
 * every result with a model computed from the content: the stream must
 * deliver a prefix of the content in order, each call must return exactly
 * what the model predicts (read and peek may return less, as documented),
 * and after the operations the rest is drained and must complete the
 * content. Any violation traps. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cio.h>

#include "fuzz_input.h"

#define MAX_OPS 31
#define MAX_CHUNKS 15

#define CHECK(c)                                                            \
    do {                                                                    \
        if (!(c))                                                           \
            __builtin_trap();                                               \
    } while (0)

enum { OP_READLINE, OP_READUNTIL, OP_READEXACTLY, OP_READ, OP_PEEK,
       OP_CONSUME, OP_COUNT };

typedef struct op {
    int kind;
    size_t size; /* buffer size, n or want */
    size_t k;    /* consume argument */
    size_t dlen;
    unsigned char delim[4];
} op;

typedef struct fuzz_ctx {
    size_t limit; /* as passed in the options (0: default) */
    op ops[MAX_OPS];
    size_t nops;
    size_t chunks[MAX_CHUNKS + 1];
    size_t nchunks;
    const unsigned char *content;
    size_t len;
    int fd; /* the writer's end */
} fuzz_ctx;

/* Small sizes mostly; the top values reach past the stream's direct-read
 * threshold and its initial buffer. */
static size_t dec_size(unsigned v)
{
    return v < 240 ? v : (size_t)(v - 239) * 1500;
}

static const size_t limits[8] = {0, 1, 2, 3, 5, 8, 16, 100};

static void parse(fuzz_ctx *x, const uint8_t *data, size_t size)
{
    fuzz_cursor c = {data, size};
    x->limit = limits[fuzz_next(&c) % 8];
    x->nops = fuzz_next(&c) % (MAX_OPS + 1);
    for (size_t i = 0; i < x->nops; i++) {
        op *o = &x->ops[i];
        memset(o, 0, sizeof *o);
        o->kind = (int)(fuzz_next(&c) % OP_COUNT);
        switch (o->kind) {
        case OP_READUNTIL:
            o->size = dec_size(fuzz_next(&c));
            o->dlen = fuzz_next(&c) % 4 + 1;
            for (size_t j = 0; j < o->dlen; j++)
                o->delim[j] = (unsigned char)fuzz_next(&c);
            break;
        case OP_PEEK:
            o->size = dec_size(fuzz_next(&c));
            o->k = fuzz_next(&c);
            break;
        case OP_CONSUME:
            o->k = fuzz_next(&c);
            break;
        default:
            o->size = dec_size(fuzz_next(&c));
            break;
        }
    }
    fuzz_split(&c, MAX_CHUNKS, &x->content, &x->len, x->chunks,
               &x->nchunks);
}

static int writer(void *arg)
{
    fuzz_ctx *x = arg;
    size_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i < x->nchunks && rc == 0; i++) {
        size_t n = x->chunks[i];
        if (n > 0) {
            ssize_t r = cio_send_all(x->fd, x->content + pos, n, NULL);
            if (r < 0)
                rc = (int)r;
            pos += n;
        }
        if (rc == 0)
            rc = cio_sleep(0);
    }
    cio_shutdown(x->fd, SHUT_WR);
    cio_close(x->fd);
    return rc;
}

/* The reader's view: `off` bytes of the content have been consumed. */
typedef struct model {
    const unsigned char *content;
    size_t len, off, limit;
} model;

static size_t remaining(const model *m)
{
    return m->len - m->off;
}

/* `n` bytes just taken from the stream must be the next ones. */
static void take(model *m, const void *got, size_t n)
{
    CHECK(n <= remaining(m));
    CHECK(n == 0 || memcmp(m->content + m->off, got, n) == 0);
    m->off += n;
}

static void check_buffered(const model *m, cio_stream *s)
{
    CHECK(cio_stream_buffered(s) <= remaining(m));
}

/* A heap buffer of exactly `n` bytes, never NULL. */
static unsigned char *alloc_buf(size_t n)
{
    unsigned char *b = malloc(n ? n : 1);
    CHECK(b != NULL);
    return b;
}

/* The result readuntil must give: the length through the first delimiter
 * within min(size, limit) bytes, -EMSGSIZE when there is none and that
 * many bytes are (or will be) available, else CIO_EINCOMPLETE with all
 * that remains. */
static ssize_t expect_until(const model *m, size_t size, const void *delim,
                            size_t dlen)
{
    size_t max = size < m->limit ? size : m->limit;
    if (dlen > max)
        return -EMSGSIZE;
    size_t rem = remaining(m);
    size_t win = rem < max ? rem : max;
    if (win >= dlen) {
        const unsigned char *hit =
            memmem(m->content + m->off, win, delim, dlen);
        if (hit)
            return (ssize_t)(hit - (m->content + m->off) + dlen);
    }
    return rem >= max ? -EMSGSIZE : CIO_EINCOMPLETE;
}

static void do_readuntil(model *m, cio_stream *s, const op *o, bool line)
{
    const unsigned char nl = '\n';
    const void *delim = line ? (const void *)&nl : (const void *)o->delim;
    size_t dlen = line ? 1 : o->dlen;
    ssize_t want = expect_until(m, o->size, delim, dlen);
    unsigned char *buf = alloc_buf(o->size);
    size_t before = cio_stream_buffered(s);
    size_t partial = 12345;
    ssize_t rc;
    if (line)
        rc = cio_stream_readline(s, buf, o->size);
    else
        rc = cio_stream_readuntil(s, buf, o->size, delim, dlen, &partial);
    if (want >= 0) {
        CHECK(rc == want);
        CHECK((size_t)rc <= o->size);
        CHECK(memcmp(buf + rc - dlen, delim, dlen) == 0);
        take(m, buf, (size_t)rc);
    } else if (want == -EMSGSIZE) {
        CHECK(rc == -EMSGSIZE);
        size_t after = cio_stream_buffered(s);
        size_t max = o->size < m->limit ? o->size : m->limit;
        if (dlen > max)
            CHECK(after == before);
        else
            CHECK(after >= before && after >= max);
    } else {
        size_t rem = remaining(m);
        CHECK(rem <= o->size);
        if (line) {
            CHECK(rc == (ssize_t)rem);
        } else {
            CHECK(rc == CIO_EINCOMPLETE);
            CHECK(partial == rem);
        }
        take(m, buf, rem);
        CHECK(cio_stream_buffered(s) == 0);
    }
    free(buf);
}

static void do_readexactly(model *m, cio_stream *s, const op *o)
{
    unsigned char *buf = alloc_buf(o->size);
    size_t partial = 12345;
    ssize_t rc = cio_stream_readexactly(s, buf, o->size, &partial);
    size_t rem = remaining(m);
    if (rem >= o->size) {
        CHECK(rc == (ssize_t)o->size);
        take(m, buf, o->size);
    } else {
        CHECK(rc == CIO_EINCOMPLETE);
        CHECK(partial == rem);
        take(m, buf, rem);
        CHECK(cio_stream_buffered(s) == 0);
    }
    free(buf);
}

static void do_read(model *m, cio_stream *s, const op *o)
{
    unsigned char *buf = alloc_buf(o->size);
    ssize_t rc = cio_stream_read(s, buf, o->size);
    size_t rem = remaining(m);
    if (o->size == 0 || rem == 0) {
        CHECK(rc == 0);
    } else {
        CHECK(rc >= 1);
        CHECK((size_t)rc <= o->size && (size_t)rc <= rem);
        take(m, buf, (size_t)rc);
    }
    free(buf);
}

static void do_peek(model *m, cio_stream *s, const op *o)
{
    size_t want = o->size ? o->size : 1;
    const void *data = NULL;
    ssize_t rc = cio_stream_peek(s, &data, o->size);
    if (want > m->limit) {
        CHECK(rc == -ENOBUFS);
        return;
    }
    size_t rem = remaining(m);
    CHECK(rc >= 0);
    CHECK((size_t)rc <= rem);
    CHECK((size_t)rc >= (want < rem ? want : rem));
    CHECK((size_t)rc == cio_stream_buffered(s));
    CHECK(data != NULL);
    CHECK(rc == 0 || memcmp(data, m->content + m->off, (size_t)rc) == 0);
    size_t k = o->k % ((size_t)rc + 1);
    CHECK(cio_stream_consume(s, k) == 0);
    m->off += k;
    CHECK(cio_stream_buffered(s) == (size_t)rc - k);
}

static void do_consume(model *m, cio_stream *s, const op *o)
{
    size_t b = cio_stream_buffered(s);
    int rc = cio_stream_consume(s, o->k);
    if (o->k > b) {
        CHECK(rc == -EINVAL);
        CHECK(cio_stream_buffered(s) == b);
    } else {
        CHECK(rc == 0);
        CHECK(cio_stream_buffered(s) == b - o->k);
        m->off += o->k;
    }
}

static void reader(fuzz_ctx *x, cio_stream *s)
{
    model m = {x->content, x->len, 0, x->limit ? x->limit : 64 * 1024};
    for (size_t i = 0; i < x->nops; i++) {
        const op *o = &x->ops[i];
        switch (o->kind) {
        case OP_READLINE:
            do_readuntil(&m, s, o, true);
            break;
        case OP_READUNTIL:
            do_readuntil(&m, s, o, false);
            break;
        case OP_READEXACTLY:
            do_readexactly(&m, s, o);
            break;
        case OP_READ:
            do_read(&m, s, o);
            break;
        case OP_PEEK:
            do_peek(&m, s, o);
            break;
        default:
            do_consume(&m, s, o);
            break;
        }
        CHECK(m.off <= m.len);
        check_buffered(&m, s);
    }
    /* Drain: the rest must complete the content, then end of stream. */
    unsigned char buf[97];
    for (;;) {
        ssize_t rc = cio_stream_read(s, buf, sizeof buf);
        CHECK(rc >= 0);
        if (rc == 0)
            break;
        take(&m, buf, (size_t)rc);
    }
    CHECK(m.off == m.len);
    /* After the end every call reports it the same way. */
    size_t partial = 12345;
    CHECK(cio_stream_readexactly(s, buf, 3, &partial) == CIO_EINCOMPLETE);
    CHECK(partial == 0);
    partial = 12345;
    CHECK(cio_stream_readuntil(s, buf, sizeof buf, "\n", 1, &partial) ==
          CIO_EINCOMPLETE);
    CHECK(partial == 0);
    CHECK(cio_stream_readline(s, buf, sizeof buf) == 0);
    const void *data = NULL;
    CHECK(cio_stream_peek(s, &data, 1) == 0);
    CHECK(cio_stream_read(s, buf, sizeof buf) == 0);
    CHECK(cio_stream_buffered(s) == 0);
}

static int fuzz_main(void *arg)
{
    fuzz_ctx *x = arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                     sv) == 0);
    cio_stream_opts opts = {.limit = x->limit};
    cio_stream *s = NULL;
    CHECK(cio_stream_open(&s, sv[0], &opts) == 0);
    x->fd = sv[1];
    cio_task *w = NULL;
    CHECK(cio_spawn(&w, writer, x) == 0);
    reader(x, s);
    CHECK(cio_stream_close(s) == 0);
    CHECK(cio_task_join(w) == 0);
    cio_task_free(w);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_ctx x;
    memset(&x, 0, sizeof x);
    parse(&x, data, size);
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 0;
    CHECK(cio_run_config(&cfg, fuzz_main, &x) == 0);
    return 0;
}
