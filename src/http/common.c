/* HTTP helpers shared by the server and the client: buffers, header
 * lists, validation, dates, percent-decoding, URLs. */
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "http_int.h"

/* ---- Buffers ------------------------------------------------------------- */

int cio__hbuf_reserve(hbuf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = cio__realloc(b->p, cap);
    if (p == NULL)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int cio__hbuf_add(hbuf *b, const void *p, size_t n)
{
    /* The room test first: most appends fit and need no call. */
    if (b->cap - b->len <= n && cio__hbuf_reserve(b, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int cio__hbuf_adds(hbuf *b, const char *s)
{
    return cio__hbuf_add(b, s, strlen(s));
}

int cio__hbuf_addf(hbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof tmp)
        return cio__hbuf_add(b, tmp, (size_t)n);
    int rc = cio__hbuf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int cio__hbuf_addu(hbuf *b, uint64_t v, unsigned base)
{
    char tmp[24];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    return cio__hbuf_add(b, tmp + i, sizeof tmp - (size_t)i);
}

int cio__hbuf_add3(hbuf *b, const char *x, const char *y, const char *z)
{
    size_t a = strlen(x), c = strlen(y), d = strlen(z);
    int rc = cio__hbuf_reserve(b, a + c + d);
    if (rc < 0)
        return rc;
    char *p = b->p + b->len;
    memcpy(p, x, a);
    memcpy(p + a, y, c);
    memcpy(p + a + c, z, d);
    b->len += a + c + d;
    b->p[b->len] = '\0';
    return 0;
}

void cio__hbuf_free(hbuf *b)
{
    cio__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- Header lists -------------------------------------------------------- */

/* llhttp hands a name or value over in pieces; a name piece after a value
 * (or at the start) opens a new header. `h->n * 2 - 1` is the index of the
 * field being filled: even = name, odd = value. A name still being filled
 * has SIZE_MAX in its value slot. Each piece costs one room test and one
 * copy: the separating NUL, the bytes and the terminating NUL go in
 * together. */
int cio__hlist_piece(hlist *h, bool value, const char *at, size_t n)
{
    size_t fields = h->n * 2;
    bool open;
    if (!value) {
        open = h->n == 0 || h->off[fields - 1] != SIZE_MAX;
        if (open && h->n == h->cap) {
            size_t cap = h->cap ? h->cap * 2 : 16;
            size_t *off = cio__realloc(h->off, cap * 2 * sizeof *off);
            if (off == NULL)
                return -ENOMEM;
            h->off = off;
            h->cap = cap;
        }
    } else {
        if (h->n == 0)
            return -EINVAL;
        open = h->off[fields - 1] == SIZE_MAX;
    }
    hbuf *b = &h->data;
    if (b->cap - b->len <= n + 1 && cio__hbuf_reserve(b, n + 1) < 0)
        return -ENOMEM;
    if (open) {
        /* The first name needs no separator: it starts the buffer. */
        if (value || h->n > 0)
            b->p[b->len++] = '\0';
        if (value) {
            h->off[fields - 1] = b->len;
        } else {
            h->off[fields] = b->len;
            h->off[fields + 1] = SIZE_MAX;
            h->n++;
        }
    }
    memcpy(b->p + b->len, at, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int cio__hlist_end_piece(hlist *h)
{
    /* A header with an empty value never got a value piece. */
    if (h->n && h->off[h->n * 2 - 1] == SIZE_MAX) {
        hbuf *b = &h->data;
        if (b->cap - b->len <= 1 && cio__hbuf_reserve(b, 1) < 0)
            return -ENOMEM;
        b->p[b->len++] = '\0';
        h->off[h->n * 2 - 1] = b->len;
        b->p[b->len] = '\0';
    }
    return 0;
}

const char *cio__hlist_name(const hlist *h, size_t i)
{
    return h->data.p + h->off[i * 2];
}

const char *cio__hlist_value(const hlist *h, size_t i)
{
    return h->data.p + h->off[i * 2 + 1];
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Whether header i is named `name` of `n` bytes: the lengths first (kept
 * in the offsets), so most headers are passed over without a look at
 * their bytes. */
static bool hlist_is(const hlist *h, size_t i, const char *name, size_t n)
{
    if (h->off[i * 2 + 1] - h->off[i * 2] != n + 1)
        return false;
    const char *p = cio__hlist_name(h, i);
    for (size_t k = 0; k < n; k++)
        if (p[k] != name[k] && ascii_lower((unsigned char)p[k]) !=
                                   ascii_lower((unsigned char)name[k]))
            return false;
    return true;
}

const char *cio__hlist_get(const hlist *h, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (hlist_is(h, i, name, n))
            return cio__hlist_value(h, i);
    return NULL;
}

size_t cio__hlist_count(const hlist *h, const char *name)
{
    size_t n = strlen(name), c = 0;
    for (size_t i = 0; i < h->n; i++)
        c += hlist_is(h, i, name, n);
    return c;
}

void cio__hlist_reset(hlist *h)
{
    h->n = 0;
    h->data.len = 0;
}

void cio__hlist_free(hlist *h)
{
    cio__hbuf_free(&h->data);
    cio__free(h->off);
    memset(h, 0, sizeof *h);
}

/* ---- Validation ---------------------------------------------------------- */

/* Byte classes: CHAR_T for an RFC 9110 tchar (alphanumerics and
 * !#$%&'*+-.^_`|~), CHAR_V for a byte allowed in a field value (tab,
 * space, visible ASCII, obs-text). One table load per byte. */
enum { CHAR_T = 1, CHAR_V = 2 };
/* clang-format off */
static const uint8_t char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};
/* clang-format on */

static bool is_tchar(unsigned char c)
{
    return char_class[c] & CHAR_T;
}

size_t cio__http_token_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    return i;
}

ssize_t cio__http_value_len(const char *value)
{
    const unsigned char *p = (const void *)value;
    while (char_class[*p] & CHAR_V)
        p++;
    return *p == '\0' ? (ssize_t)(p - (const unsigned char *)value) : -EINVAL;
}

int cio_http_header_check(const char *name, const char *value)
{
    if (name == NULL || value == NULL || *name == '\0')
        return -EINVAL;
    for (const unsigned char *p = (const void *)name; *p; p++)
        if (!is_tchar(*p))
            return -EINVAL;
    return cio__http_value_len(value) < 0 ? -EINVAL : 0;
}

bool cio__http_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

bool cio__http_has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
    }
    return false;
}

const char *cio_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- Dates --------------------------------------------------------------- */

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                 "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void cio__http_fmt_date(char *buf, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(buf, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             wdays[tm.tm_wday % 7], tm.tm_mday % 100, months[tm.tm_mon % 12],
             (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* One loop per thread, so the cache is per thread: the date of the
 * current second, and the status and Date lines of the last response
 * head started in it. */
static _Thread_local struct {
    int64_t sec;
    char text[40];
    int status; /* of `head`; 0: none yet this second */
    size_t len;
    char head[128];
} date_cache = {-1, "", 0, 0, ""};

static void date_refresh(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != date_cache.sec) {
        cio__http_fmt_date(date_cache.text, ts.tv_sec);
        date_cache.sec = ts.tv_sec;
        date_cache.status = 0;
    }
}

int64_t cio__http_date_sec(void)
{
    date_refresh();
    return date_cache.sec;
}

const char *cio__http_date(void)
{
    date_refresh();
    return date_cache.text;
}

const char *cio__http_head_start(int status, size_t *len)
{
    date_refresh();
    if (status != date_cache.status) {
        /* A status is 3 digits, a reason at most 31 bytes: 83 bytes. */
        int n = snprintf(date_cache.head, sizeof date_cache.head,
                         "HTTP/1.1 %03d %s\r\nDate: %s\r\n", status,
                         cio_http_reason(status), date_cache.text);
        date_cache.len =
            n > 0 && (size_t)n < sizeof date_cache.head ? (size_t)n : 0;
        date_cache.status = date_cache.len ? status : 0;
    }
    *len = date_cache.len;
    return date_cache.head;
}

int64_t cio__http_parse_date(const char *s)
{
    char wd[4], mon[4];
    int d, y, h, mi, se;
    if (sscanf(s, "%3s, %d %3s %d %d:%d:%d GMT", wd, &d, mon, &y, &h, &mi,
               &se) != 7)
        return -1;
    int m = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(mon, months[i]) == 0)
            m = i;
    if (m < 0 || d < 1 || d > 31 || y < 1970 || h > 23 || mi > 59 || se > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = m,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    return (int64_t)timegm(&tm);
}

/* ---- Percent-decoding ---------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t cio__http_pct_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0)
            return -EINVAL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

/* ---- URLs ---------------------------------------------------------------- */

int cio__http_url_parse(http_url *u, const char *url)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        u->port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        u->https = true;
        u->port = 443;
    } else if (strstr(url, "://") != NULL) {
        return -EPROTONOSUPPORT;
    } else {
        return -EINVAL;
    }
    size_t alen = strcspn(p, "/?#");
    const char *auth_end = p + alen;
    if (memchr(p, '@', alen) != NULL)
        return -EINVAL; /* credentials in URLs are refused */
    const char *hs = p, *he;
    const char *portp = NULL;
    if (*p == '[') {
        he = memchr(p, ']', alen);
        if (he == NULL)
            return -EINVAL;
        hs = p + 1;
        if (he + 1 < auth_end) {
            if (he[1] != ':')
                return -EINVAL;
            portp = he + 2;
        }
    } else {
        he = memchr(p, ':', alen);
        if (he != NULL)
            portp = he + 1;
        else
            he = auth_end;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof u->host)
        return -EINVAL;
    memcpy(u->host, hs, hl);
    u->host[hl] = '\0';
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)u->host[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}%", c))
            return -EINVAL;
    }
    if (portp != NULL) {
        if (portp == auth_end)
            return -EINVAL;
        long port = 0;
        for (const char *q = portp; q < auth_end; q++) {
            if (*q < '0' || *q > '9')
                return -EINVAL;
            port = port * 10 + (*q - '0');
            if (port > 65535)
                return -EINVAL;
        }
        if (port == 0)
            return -EINVAL;
        u->port = (int)port;
    }
    const char *t = auth_end;
    size_t tl = strcspn(t, "#");
    for (size_t i = 0; i < tl; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c == 0x7f)
            return -EINVAL;
    }
    u->target = cio__malloc(tl + 2);
    if (u->target == NULL)
        return -ENOMEM;
    size_t o = 0;
    if (tl == 0 || t[0] == '?')
        u->target[o++] = '/';
    memcpy(u->target + o, t, tl);
    u->target[o + tl] = '\0';
    return 0;
}

void cio__http_url_free(http_url *u)
{
    cio__free(u->target);
    u->target = NULL;
}

int cio__http_url_join(const http_url *base, const char *loc, char **out)
{
    hbuf b = {0};
    int rc = 0;
    if (strstr(loc, "://") != NULL) {
        rc = cio__hbuf_adds(&b, loc);
    } else {
        const char *scheme = base->https ? "https" : "http";
        bool v6 = strchr(base->host, ':') != NULL;
        if (loc[0] == '/' && loc[1] == '/') {
            rc = cio__hbuf_addf(&b, "%s:%s", scheme, loc);
        } else {
            rc = cio__hbuf_addf(&b, "%s://%s%s%s:%d", scheme, v6 ? "[" : "",
                                base->host, v6 ? "]" : "", base->port);
            if (rc == 0 && loc[0] != '/') {
                /* Relative to the directory of the base path. */
                const char *t = base->target;
                size_t pl = strcspn(t, "?");
                const char *slash = t;
                for (size_t i = 0; i < pl; i++)
                    if (t[i] == '/')
                        slash = t + i;
                rc = cio__hbuf_add(&b, t, (size_t)(slash - t) + 1);
            }
            if (rc == 0)
                rc = cio__hbuf_adds(&b, loc);
        }
    }
    if (rc < 0) {
        cio__hbuf_free(&b);
        return rc;
    }
    *out = b.p;
    return 0;
}
