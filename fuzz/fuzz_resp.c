/* libFuzzer target for the RESP2/RESP3 reply parser.
 *
 * Input layout:
 *   byte 0    limits: even = the defaults, odd = small limits (bulk 64,
 *             elements 8, depth 4, line 32), so both paths get covered
 *   byte 1    seed for the chunk sizes
 *   rest      the bytes a server sends
 *
 * The bytes are parsed twice: in one piece, and cut into chunks of 1-16
 * bytes chosen by the seed (leftover bytes of an incomplete line carried
 * over, as the client does). Both runs must produce the same replies, in
 * the same order, with the same final outcome (an error or the need for
 * more). Every reply must be well formed: strings NUL-terminated at their
 * length, aggregates within the element and depth limits, maps of pairs.
 * Any violation traps; ASan and the leak checker watch the memory. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "db/resp.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            __builtin_trap();                                                  \
    } while (0)

#define MAX_REPLIES 64

typedef struct outcome {
    int n;
    uint64_t hash[MAX_REPLIES];
    int last; /* final return: 0 (need more) or an error */
} outcome;

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

/* Check `r` and hash its content. */
static uint64_t walk(const cio_redis_reply *r, const cio_redis_limits *lim,
                     size_t depth)
{
    CHECK(r != NULL);
    uint64_t h = mix(0xcbf29ce484222325ull, (uint64_t)r->type);
    switch (r->type) {
    case CIO_REDIS_STRING:
    case CIO_REDIS_STATUS:
    case CIO_REDIS_ERROR:
    case CIO_REDIS_DOUBLE:
    case CIO_REDIS_BIGNUM:
    case CIO_REDIS_VERB:
        CHECK(r->str != NULL && r->str[r->len] == '\0');
        CHECK(r->len <= lim->max_bulk || r->type != CIO_REDIS_STRING);
        for (size_t i = 0; i < r->len; i++)
            h = mix(h, (unsigned char)r->str[i]);
        if (r->type == CIO_REDIS_VERB)
            CHECK(strlen(r->vtype) == 3);
        return h;
    case CIO_REDIS_INTEGER:
    case CIO_REDIS_BOOL:
        CHECK(r->type != CIO_REDIS_BOOL || r->integer == 0 || r->integer == 1);
        return mix(h, (uint64_t)r->integer);
    case CIO_REDIS_NIL:
        return h;
    case CIO_REDIS_ARRAY:
    case CIO_REDIS_SET:
    case CIO_REDIS_PUSH:
    case CIO_REDIS_MAP:
        CHECK(depth < lim->max_depth);
        CHECK(r->len <= lim->max_elements);
        CHECK(r->type != CIO_REDIS_MAP || r->len % 2 == 0);
        CHECK(r->len == 0 || r->elem != NULL);
        for (size_t i = 0; i < r->len; i++)
            h = mix(h, walk(r->elem[i], lim, depth + 1));
        return h;
    default:
        CHECK(0);
        return 0;
    }
}

static void run(const cio_redis_limits *lim, const uint8_t *in, size_t len,
                uint32_t seed, outcome *o)
{
    cio__resp_parser p;
    cio__resp_init(&p, lim);
    char *buf = malloc(len + 1);
    size_t have = 0, pos = 0;
    memset(o, 0, sizeof *o);
    while (pos < len || have > 0) {
        size_t k = len - pos;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t c = 1 + (seed >> 16) % 16;
            k = k < c ? k : c;
        }
        memcpy(buf + have, in + pos, k);
        have += k;
        pos += k;
        size_t used = 0;
        cio_redis_reply *r = NULL;
        int rc = cio__resp_parse(&p, buf, have, &used, &r);
        CHECK(used <= have);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (rc < 0) {
            CHECK(rc == CIO_EBADRESP || rc == -ENOMEM);
            o->last = rc;
            break;
        }
        if (rc == 1) {
            uint64_t h = walk(r, &p.lim, 0);
            if (o->n < MAX_REPLIES)
                o->hash[o->n++] = h;
            cio_redis_reply_free(r);
            continue; /* more may be buffered */
        }
        if (pos == len)
            break; /* needs more than there is */
    }
    cio__resp_reset(&p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    cio_redis_limits small = {
        .max_bulk = 64, .max_elements = 8, .max_depth = 4, .max_line = 32};
    cio_redis_limits def = {0};
    const cio_redis_limits *lim = (data[0] & 1) ? &small : &def;
    uint32_t seed = data[1] | 1u;
    outcome whole, pieces;
    run(lim, data + 2, size - 2, 0, &whole);
    run(lim, data + 2, size - 2, seed, &pieces);
    CHECK(whole.n == pieces.n);
    for (int i = 0; i < whole.n; i++)
        CHECK(whole.hash[i] == pieces.hash[i]);
    CHECK(whole.last == pieces.last);
    CHECK(cio__alloc_live() == 0);
    return 0;
}
