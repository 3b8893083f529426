/* RESP2 / RESP3 parsing and command encoding (see resp.h).
 *
 * The parser is a loop over an explicit stack of open aggregates, so a
 * deeply nested reply costs frames (bounded by max_depth), never C stack.
 * Element arrays and string buffers grow geometrically as data arrives:
 * a header that declares 2^31 elements or a 512 MiB string allocates
 * nothing until the bytes come. Streamed RESP3 types ($?, *?) are not
 * sent by Redis and are refused. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "db/resp.h"

#define DEF_MAX_BULK ((size_t)512 * 1024 * 1024)
#define DEF_MAX_ELEMENTS ((size_t)16 * 1024 * 1024)
#define DEF_MAX_DEPTH ((size_t)32)
#define DEF_MAX_LINE ((size_t)64 * 1024)
#define FIRST_STR ((size_t)64 * 1024) /* first allocation of a big bulk */
#define FIRST_ELEMS ((size_t)16)

/* ---- replies ------------------------------------------------------------- */

void cio_redis_reply_free(cio_redis_reply *r)
{
    if (r == NULL)
        return;
    /* Depth is bounded by the parser's max_depth, so recursion is too. */
    for (size_t i = 0; r->elem != NULL && i < r->len; i++)
        cio_redis_reply_free(r->elem[i]);
    cio__free(r->elem);
    cio__free(r->str);
    cio__free(r);
}

const char *cio_redis_type_name(int type)
{
    static const char *const names[] = {
        "unknown", "string", "array", "integer", "nil",  "status", "error",
        "double",  "bool",   "map",   "set",     "push", "bignum", "verb",
    };
    if (type < 0 || (size_t)type >= sizeof names / sizeof names[0])
        return "unknown";
    return names[type];
}

/* ---- parser state -------------------------------------------------------- */

void cio__resp_init(cio__resp_parser *p, const cio_redis_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim != NULL)
        p->lim = *lim;
    if (p->lim.max_bulk == 0)
        p->lim.max_bulk = DEF_MAX_BULK;
    if (p->lim.max_elements == 0)
        p->lim.max_elements = DEF_MAX_ELEMENTS;
    if (p->lim.max_depth == 0)
        p->lim.max_depth = DEF_MAX_DEPTH;
    if (p->lim.max_depth > CIO__RESP_DEPTH_CEIL)
        p->lim.max_depth = CIO__RESP_DEPTH_CEIL;
    if (p->lim.max_line == 0)
        p->lim.max_line = DEF_MAX_LINE;
}

void cio__resp_reset(cio__resp_parser *p)
{
    cio_redis_reply_free(p->bulk);
    p->bulk = NULL;
    while (p->depth > 0)
        cio_redis_reply_free(p->stack[--p->depth].r);
}

bool cio__resp_busy(const cio__resp_parser *p)
{
    return p->bulk != NULL || p->depth > 0;
}

static cio_redis_reply *reply_new(int type)
{
    cio_redis_reply *r = cio__calloc(1, sizeof *r);
    if (r != NULL)
        r->type = type;
    return r;
}

/* A string reply holding a copy of `s[0..n)` and a NUL. */
static cio_redis_reply *reply_str(int type, const char *s, size_t n)
{
    cio_redis_reply *r = reply_new(type);
    if (r == NULL)
        return NULL;
    r->str = cio__malloc(n + 1);
    if (r->str == NULL) {
        cio__free(r);
        return NULL;
    }
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

/* ---- number parsing ------------------------------------------------------ */

/* A decimal integer with an optional sign filling all of `s[0..n)`. */
static int parse_ll(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    bool neg = false;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n)
        return CIO_EBADRESP;
    unsigned long long v = 0;
    unsigned long long lim =
        neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CIO_EBADRESP;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return CIO_EBADRESP;
        v = v * 10 + d;
    }
    if (neg)
        *out =
            v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    else
        *out = (long long)v;
    return 0;
}

static int parse_double(const char *s, size_t n, double *out)
{
    char tmp[128];
    if (n == 0 || n >= sizeof tmp)
        return CIO_EBADRESP;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (strcmp(tmp, "inf") == 0 || strcmp(tmp, "+inf") == 0) {
        *out = HUGE_VAL;
        return 0;
    }
    if (strcmp(tmp, "-inf") == 0) {
        *out = -HUGE_VAL;
        return 0;
    }
    if (strcmp(tmp, "nan") == 0 || strcmp(tmp, "-nan") == 0) {
        *out = NAN;
        return 0;
    }
    /* strtod would also take hex, "infinity" and leading blanks. */
    for (size_t i = 0; i < n; i++)
        if (strchr("0123456789+-.eE", tmp[i]) == NULL)
            return CIO_EBADRESP;
    char *end;
    *out = strtod(tmp, &end);
    return end == tmp + n ? 0 : CIO_EBADRESP;
}

/* A length header: -1 (when `nil_ok`) or 0..max. */
static int parse_len(const char *s, size_t n, size_t max, bool nil_ok,
                     long long *out)
{
    long long v;
    if (parse_ll(s, n, &v) < 0)
        return CIO_EBADRESP;
    if (v == -1 && nil_ok) {
        *out = -1;
        return 0;
    }
    if (v < 0 || (unsigned long long)v > max)
        return CIO_EBADRESP;
    *out = v;
    return 0;
}

/* ---- building the tree --------------------------------------------------- */

/* Hand a complete value `r` to the open aggregate, closing every aggregate
 * it completes. Returns 1 with the top-level reply in *out, 0 when the
 * tree is still open, -ENOMEM (r is freed). */
static int emit(cio__resp_parser *p, cio_redis_reply *r, cio_redis_reply **out)
{
    for (;;) {
        if (p->depth == 0) {
            *out = r;
            return 1;
        }
        cio__resp_frame *f = &p->stack[p->depth - 1];
        if (f->r->len == f->cap) {
            size_t cap = f->cap ? f->cap * 2 : FIRST_ELEMS;
            if (cap > f->want)
                cap = f->want;
            void *e = cio__realloc(f->r->elem, cap * sizeof *f->r->elem);
            if (e == NULL) {
                cio_redis_reply_free(r);
                return -ENOMEM;
            }
            f->r->elem = e;
            f->cap = cap;
        }
        f->r->elem[f->r->len++] = r;
        if (f->r->len < f->want)
            return 0;
        r = f->r;
        bool attr = f->attr;
        p->depth--;
        if (attr) {
            /* Attributes describe the next value; they are dropped. */
            cio_redis_reply_free(r);
            return 0;
        }
    }
}

/* Open an aggregate of `n` elements (n > 0). 0, CIO_EBADRESP, -ENOMEM. */
static int push_frame(cio__resp_parser *p, int type, size_t n, bool attr)
{
    if (p->depth >= p->lim.max_depth)
        return CIO_EBADRESP;
    cio_redis_reply *r = reply_new(type);
    if (r == NULL)
        return -ENOMEM;
    p->stack[p->depth++] = (cio__resp_frame){.r = r, .want = n, .attr = attr};
    return 0;
}

static int agg_type(char c)
{
    switch (c) {
    case '*':
        return CIO_REDIS_ARRAY;
    case '%':
    case '|':
        return CIO_REDIS_MAP;
    case '~':
        return CIO_REDIS_SET;
    default:
        return CIO_REDIS_PUSH;
    }
}

/* An aggregate header with count text `s[0..n)`. Returns 1 with a value
 * complete at once (nil or empty) in *val, 0 when a frame was opened,
 * < 0 on error. */
static int start_agg(cio__resp_parser *p, char c, const char *s, size_t n,
                     cio_redis_reply **val)
{
    bool pairs = c == '%' || c == '|';
    long long v;
    size_t max = pairs ? p->lim.max_elements / 2 : p->lim.max_elements;
    if (parse_len(s, n, max, c == '*', &v) < 0)
        return CIO_EBADRESP;
    /* An empty aggregate nests like any other: the depth limit holds for
     * it too (a nil array is not an aggregate). */
    if (v == 0 && c != '|' && p->depth >= p->lim.max_depth)
        return CIO_EBADRESP;
    if (v <= 0) {
        *val = reply_new(v < 0 ? CIO_REDIS_NIL : agg_type(c));
        if (*val == NULL)
            return -ENOMEM;
        if (c == '|') {
            cio_redis_reply_free(*val); /* an empty attribute: nothing */
            *val = NULL;
        }
        return 1;
    }
    size_t want = pairs ? (size_t)v * 2 : (size_t)v;
    return push_frame(p, agg_type(c), want, c == '|');
}

/* A bulk header ($, !, =) with length text `s[0..n)`. As start_agg. */
static int start_bulk(cio__resp_parser *p, char c, const char *s, size_t n,
                      cio_redis_reply **val)
{
    long long v;
    if (parse_len(s, n, p->lim.max_bulk, c == '$', &v) < 0)
        return CIO_EBADRESP;
    if (v < 0) {
        *val = reply_new(CIO_REDIS_NIL);
        return *val == NULL ? -ENOMEM : 1;
    }
    if (c == '=' && v < 4)
        return CIO_EBADRESP; /* "txt:" at least */
    int type = c == '$'   ? CIO_REDIS_STRING
               : c == '!' ? CIO_REDIS_ERROR
                          : CIO_REDIS_VERB;
    cio_redis_reply *r = reply_new(type);
    if (r == NULL)
        return -ENOMEM;
    size_t cap = (size_t)v < FIRST_STR ? (size_t)v + 1 : FIRST_STR;
    r->str = cio__malloc(cap);
    if (r->str == NULL) {
        cio__free(r);
        return -ENOMEM;
    }
    p->bulk = r;
    p->bulk_want = (size_t)v;
    p->bulk_have = 0;
    p->bulk_cap = cap;
    return 0;
}

/* A one-line value ('+', '-', ':', '_', ',', '#', '('). As start_agg but
 * never opens a frame. */
static int line_value(char c, const char *s, size_t n, cio_redis_reply **val)
{
    cio_redis_reply *r = NULL;
    int rc = 0;
    switch (c) {
    case '+':
    case '-':
        r = reply_str(c == '+' ? CIO_REDIS_STATUS : CIO_REDIS_ERROR, s, n);
        break;
    case ':':
        r = reply_new(CIO_REDIS_INTEGER);
        if (r != NULL)
            rc = parse_ll(s, n, &r->integer);
        break;
    case '_':
        if (n != 0)
            return CIO_EBADRESP;
        r = reply_new(CIO_REDIS_NIL);
        break;
    case '#':
        if (n != 1 || (s[0] != 't' && s[0] != 'f'))
            return CIO_EBADRESP;
        r = reply_new(CIO_REDIS_BOOL);
        if (r != NULL)
            r->integer = s[0] == 't';
        break;
    case ',':
        r = reply_str(CIO_REDIS_DOUBLE, s, n);
        if (r != NULL)
            rc = parse_double(s, n, &r->dval);
        break;
    default: /* '(' */
        r = reply_str(CIO_REDIS_BIGNUM, s, n);
        if (r != NULL && n > 0 && s[0] == '-')
            s++, n--;
        for (size_t i = 0; r != NULL && i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                rc = CIO_EBADRESP;
        if (n == 0)
            rc = CIO_EBADRESP;
        break;
    }
    if (r == NULL)
        return -ENOMEM;
    if (rc < 0) {
        cio_redis_reply_free(r);
        return rc;
    }
    *val = r;
    return 1;
}

/* ---- bulk bodies --------------------------------------------------------- */

/* Take bulk bytes (then the CRLF after them) from `buf[0..len)`. Returns
 * 1 with the finished string in *val, 0 when all of `buf` was used,
 * < 0 on error. `*used` gets the bytes taken. */
static int bulk_body(cio__resp_parser *p, const char *buf, size_t len,
                     size_t *used, cio_redis_reply **val)
{
    cio_redis_reply *r = p->bulk;
    size_t i = 0;
    if (p->bulk_have < p->bulk_want) {
        size_t k = p->bulk_want - p->bulk_have;
        if (k > len)
            k = len;
        if (p->bulk_have + k + 1 > p->bulk_cap) {
            size_t cap = p->bulk_cap * 2;
            if (cap < p->bulk_have + k + 1)
                cap = p->bulk_have + k + 1;
            if (cap > p->bulk_want + 1)
                cap = p->bulk_want + 1;
            char *s = cio__realloc(r->str, cap);
            if (s == NULL)
                return -ENOMEM;
            r->str = s;
            p->bulk_cap = cap;
        }
        memcpy(r->str + p->bulk_have, buf, k);
        p->bulk_have += k;
        i = k;
    }
    /* The CRLF, possibly split across reads: bulk_have counts past the
     * body. */
    while (i < len && p->bulk_have < p->bulk_want + 2) {
        char want = p->bulk_have == p->bulk_want ? '\r' : '\n';
        if (buf[i] != want)
            return CIO_EBADRESP;
        p->bulk_have++;
        i++;
    }
    *used = i;
    if (p->bulk_have < p->bulk_want + 2)
        return 0;
    r->len = p->bulk_want;
    r->str[r->len] = '\0';
    if (r->type == CIO_REDIS_VERB) {
        /* The "txt:" prefix goes into vtype: three printable bytes. */
        if (r->str[3] != ':')
            return CIO_EBADRESP;
        for (int k = 0; k < 3; k++)
            if (r->str[k] <= ' ' || r->str[k] > '~' || r->str[k] == ':')
                return CIO_EBADRESP;
        memcpy(r->vtype, r->str, 3);
        r->vtype[3] = '\0';
        memmove(r->str, r->str + 4, r->len - 4 + 1);
        r->len -= 4;
    }
    p->bulk = NULL;
    *val = r;
    return 1;
}

/* ---- the loop ------------------------------------------------------------ */

/* One header line at `buf[0..len)`. Returns 1 with a complete value in
 * *val (may be NULL: an empty attribute), 0 when a frame or bulk was
 * opened, 2 when the line is not complete yet, < 0 on error. */
static int header(cio__resp_parser *p, const char *buf, size_t len,
                  size_t *used, cio_redis_reply **val)
{
    size_t scan = len < p->lim.max_line + 3 ? len : p->lim.max_line + 3;
    const char *nl = memchr(buf, '\n', scan);
    if (nl == NULL)
        return len >= p->lim.max_line + 3 ? CIO_EBADRESP : 2;
    size_t n = (size_t)(nl - buf);
    if (n < 2 || buf[n - 1] != '\r')
        return CIO_EBADRESP;
    *used = n + 1;
    char c = buf[0];
    const char *s = buf + 1;
    n -= 2; /* the text between the type byte and the CR */
    if (memchr(s, '\r', n) != NULL)
        return CIO_EBADRESP;
    switch (c) {
    case '*':
    case '%':
    case '~':
    case '>':
    case '|':
        return start_agg(p, c, s, n, val);
    case '$':
    case '!':
    case '=':
        return start_bulk(p, c, s, n, val);
    case '+':
    case '-':
    case ':':
    case '_':
    case ',':
    case '#':
    case '(':
        return line_value(c, s, n, val);
    default:
        return CIO_EBADRESP;
    }
}

int cio__resp_parse(cio__resp_parser *p, const char *buf, size_t len,
                    size_t *used, cio_redis_reply **out)
{
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
        cio_redis_reply *val = NULL;
        size_t k = 0;
        if (p->bulk != NULL)
            rc = bulk_body(p, buf + pos, len - pos, &k, &val);
        else
            rc = header(p, buf + pos, len - pos, &k, &val);
        if (rc < 0)
            break;
        if (rc == 2) {
            rc = 0; /* an incomplete line: leave it for the next call */
            break;
        }
        pos += k;
        if (rc == 1 && val != NULL) {
            rc = emit(p, val, out);
            if (rc != 0)
                break;
        }
        rc = 0;
    }
    *used = pos;
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

static int reserve(char **buf, size_t *len, size_t *cap, size_t more)
{
    if (more > SIZE_MAX - *len)
        return -ENOMEM;
    if (*len + more <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < *len + more)
        n = n > SIZE_MAX / 2 ? *len + more : n * 2;
    char *b = cio__realloc(*buf, n);
    if (b == NULL)
        return -ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

static size_t put_header(char *dst, char c, size_t n)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    dst[0] = c;
    memcpy(dst + 1, tmp + i, sizeof tmp - i);
    size_t k = 1 + sizeof tmp - i;
    dst[k] = '\r';
    dst[k + 1] = '\n';
    return k + 2;
}

int cio__resp_encode(char **buf, size_t *len, size_t *cap, int argc,
                     const char *const *argv, const size_t *argvlen)
{
    size_t start = *len;
    if (reserve(buf, len, cap, 32) < 0)
        return -ENOMEM;
    *len += put_header(*buf + *len, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        if (reserve(buf, len, cap, n + 32) < 0) {
            *len = start;
            return -ENOMEM;
        }
        *len += put_header(*buf + *len, '$', n);
        if (n > 0)
            memcpy(*buf + *len, argv[i], n);
        (*buf)[*len + n] = '\r';
        (*buf)[*len + n + 1] = '\n';
        *len += n + 2;
    }
    return 0;
}
