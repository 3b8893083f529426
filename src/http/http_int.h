/* Private to src/http: shared helpers of the HTTP server and client. */
#ifndef CIO_HTTP_INT_H
#define CIO_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "cio/http.h"

/* A growable byte buffer (cio__malloc'd). */
typedef struct hbuf {
    char *p;
    size_t len, cap;
} hbuf;

int cio__hbuf_reserve(hbuf *b, size_t extra);
int cio__hbuf_add(hbuf *b, const void *p, size_t n);
int cio__hbuf_adds(hbuf *b, const char *s);
/* Append a formatted string. */
int cio__hbuf_addf(hbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append `v` in decimal (base 10) or hex (16). */
int cio__hbuf_addu(hbuf *b, uint64_t v, unsigned base);
/* Append three strings. */
int cio__hbuf_add3(hbuf *b, const char *x, const char *y, const char *z);
void cio__hbuf_free(hbuf *b);

/* A parsed header list: offsets into one buffer, NUL-terminated names and
 * values. */
typedef struct hlist {
    hbuf data;
    size_t *off; /* 2 per header: name, value */
    size_t n, cap;
} hlist;

/* Start a new header (name piece) or extend the current name / value
 * (llhttp hands them over in pieces). */
int cio__hlist_piece(hlist *h, bool value, const char *at, size_t n);
/* Terminate the last piece. */
int cio__hlist_end_piece(hlist *h);
/* The value of the first header named `name` (any case), or NULL. */
const char *cio__hlist_get(const hlist *h, const char *name);
/* The length of header i's name (once its value piece has ended). */
static inline size_t cio__hlist_name_len(const hlist *h, size_t i)
{
    return h->off[i * 2 + 1] - h->off[i * 2] - 1;
}
/* Whether header i's name is `lc` (`n` bytes of lower-case letters and
 * '-'), in any case. A name is a token, so `| 0x20` folds only letters
 * onto lower case and maps no other token byte onto a letter or '-'. */
static inline bool cio__hlist_name_is(const hlist *h, size_t i, const char *lc,
                                      size_t n)
{
    const char *p = h->data.p + h->off[i * 2];
    if (cio__hlist_name_len(h, i) != n)
        return false;
    for (size_t k = 0; k < n; k++)
        if ((p[k] | 0x20) != lc[k])
            return false;
    return true;
}
size_t cio__hlist_count(const hlist *h, const char *name);
const char *cio__hlist_name(const hlist *h, size_t i);
const char *cio__hlist_value(const hlist *h, size_t i);
void cio__hlist_reset(hlist *h);
void cio__hlist_free(hlist *h);

/* The IMF-fixdate of now, cached per second ("Sun, 06 Nov 1994 08:49:37
 * GMT", 29 bytes). */
const char *cio__http_date(void);
/* The second cio__http_date and cio__http_head_start stand at now. */
int64_t cio__http_date_sec(void);
/* The first lines of a response head, "HTTP/1.1 200 OK\r\nDate: ...\r\n",
 * for `status` (100 to 999) now, in `*len` bytes; cached per thread for
 * the last status and the current second. */
const char *cio__http_head_start(int status, size_t *len);
/* Format `t` as an IMF-fixdate into buf (>= 32 bytes). */
void cio__http_fmt_date(char *buf, int64_t t);
/* Parse an IMF-fixdate; -1 when malformed. */
int64_t cio__http_parse_date(const char *s);

/* Percent-decode `n` bytes of `s` into `out` (size >= n + 1). Returns the
 * decoded length, or -EINVAL for a bad escape or a NUL byte. '+' is kept. */
ssize_t cio__http_pct_decode(const char *s, size_t n, char *out);

/* The length of the RFC 9110 token at the start of p[0..n). */
size_t cio__http_token_len(const char *p, size_t n);

/* The length of a header value, or -EINVAL when it holds a control
 * byte other than tab (the value half of cio_http_header_check). */
ssize_t cio__http_value_len(const char *value);

/* Case-insensitive ASCII comparison of a NUL-terminated pair. */
bool cio__http_ieq(const char *a, const char *b);
/* Whether the comma-separated token list `list` holds `tok` (any case). */
bool cio__http_has_token(const char *list, const char *tok);

/* A parsed absolute URL. */
typedef struct http_url {
    bool https;
    char host[256]; /* without brackets */
    int port;
    char *target; /* path + query, cio__malloc'd */
} http_url;

/* Parse an absolute http(s) URL. 0; -EINVAL; -EPROTONOSUPPORT for
 * another scheme; -ENOMEM. */
int cio__http_url_parse(http_url *u, const char *url);
/* Resolve `loc` (a Location value) against `base` into a new URL string
 * (cio__malloc'd). 0, -EINVAL, -ENOMEM. */
int cio__http_url_join(const http_url *base, const char *loc, char **out);
void cio__http_url_free(http_url *u);

#endif
