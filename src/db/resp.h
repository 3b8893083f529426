/* The RESP2/RESP3 reply parser (private to src/db/). Incremental: feed it
 * whatever bytes have arrived; it keeps the reply built so far between
 * calls, consumes what it used and asks for more. Bounded: the limits in
 * cio_redis_limits cap string lengths, element counts, nesting depth and
 * line lengths, memory grows with the bytes actually received (a declared
 * length allocates nothing up front), and nothing recurses while parsing.
 */
#ifndef CIO_DB_RESP_H
#define CIO_DB_RESP_H

#include <stdbool.h>
#include <stddef.h>

#include "cio/redis.h"

/* The hard ceiling on cio_redis_limits.max_depth. */
#define CIO__RESP_DEPTH_CEIL 128

typedef struct cio__resp_frame {
    cio_redis_reply *r; /* the aggregate being filled */
    size_t want;        /* elements it must get */
    size_t cap;         /* slots allocated in r->elem */
    bool attr;          /* a RESP3 attribute: dropped once complete */
} cio__resp_frame;

typedef struct cio__resp_parser {
    cio_redis_limits lim; /* with the defaults filled in */
    size_t depth;         /* open frames */
    cio__resp_frame stack[CIO__RESP_DEPTH_CEIL];
    cio_redis_reply *bulk; /* a string whose bytes are arriving */
    size_t bulk_want;      /* its declared length */
    size_t bulk_have;      /* bytes of it (then of its CRLF) seen */
    size_t bulk_cap;       /* bytes allocated for bulk->str */
} cio__resp_parser;

/* Set up `p` with `lim` (NULL or zero fields: the defaults). */
void cio__resp_init(cio__resp_parser *p, const cio_redis_limits *lim);

/* Drop a reply in progress; `p` is ready for a new one. */
void cio__resp_reset(cio__resp_parser *p);

/* Parse from `buf[0..len)`. `*used` is set to the bytes consumed, which
 * the caller drops before calling again (bytes not consumed are an
 * incomplete line: pass them again with more after them). Returns 1 with
 * a complete reply in `*out` (the caller owns it); 0 when more input is
 * needed; CIO_EBADRESP for malformed input or a limit passed; -ENOMEM.
 * After an error the parser must be reset before further use. */
int cio__resp_parse(cio__resp_parser *p, const char *buf, size_t len,
                    size_t *used, cio_redis_reply **out);

/* Whether a reply is in progress (some of it consumed). */
bool cio__resp_busy(const cio__resp_parser *p);

/* Encode one command as a RESP array of bulk strings, appended to the
 * growing buffer `*buf` (`*len` used, `*cap` allocated, cio__malloc'd).
 * `argvlen` NULL: NUL-terminated strings. 0 or -ENOMEM. */
int cio__resp_encode(char **buf, size_t *len, size_t *cap, int argc,
                     const char *const *argv, const size_t *argvlen);

#endif
