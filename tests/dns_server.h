/* A fake DNS server for tests: UDP and TCP on one loopback port, served
 * by two cio tasks answering from a table of records. Replies are built
 * by hand (RFC 1035 wire format, names uncompressed).
 *
 * Names with a behaviour of their own (any type):
 *   servfail.test  answers SERVFAIL
 *   refused.test   answers REFUSED
 *   silent.test    never answers
 *   badresp.test   claims an answer that the packet does not carry
 *   trunc.test     over UDP an empty answer with TC set; over TCP the
 *                  table's records
 * Other names missing from the table get NXDOMAIN; a name in the table
 * without a record of the asked type gets an empty NOERROR answer. */
#ifndef CIO_TEST_DNS_SERVER_H
#define CIO_TEST_DNS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cio.h>
#include <cio/dns.h>

enum {
    RR_A = 1,
    RR_CNAME = 5,
    RR_MX = 15,
    RR_TXT = 16,
    RR_AAAA = 28,
    RR_SRV = 33,
};

typedef struct dns_rr {
    const char *name; /* owner, lower case, no final dot */
    int type;
    uint32_t ttl;
    /* A/AAAA: the address; CNAME, MX, SRV: the target name; TXT: the
     * character-strings separated by '|'. */
    const char *data;
    int prio, weight, port; /* MX (prio), SRV */
} dns_rr;

/* The fake server is only of use to the c-ares resolver; without it a
 * test that needs one passes as skipped. */
#define HAVE_CARES() (strcmp(cio_dns_resolver(), "c-ares") == 0)
#define NEED_CARES()                                                           \
    do {                                                                       \
        if (!HAVE_CARES())                                                     \
            return 0;                                                          \
    } while (0)

#define DNS_LOG_MAX 256

typedef struct dns_server {
    int udp, tcp;
    int port;
    char servers[32]; /* "127.0.0.1:PORT" for cio_dns_config.servers */
    const dns_rr *rrs;
    size_t nrr;
    int queries;     /* every query received */
    int tcp_queries; /* of those, over TCP */
    struct {
        char name[64];
        int type;
    } log[DNS_LOG_MAX];
    cio_task *utask, *ttask;
} dns_server;

/* Queries received for `name` and `type` (0: any type). */
static inline int dns_server_count(const dns_server *s, const char *name,
                                   int type)
{
    int n = 0;
    for (int i = 0; i < s->queries && i < DNS_LOG_MAX; i++)
        if (strcmp(s->log[i].name, name) == 0 &&
            (type == 0 || s->log[i].type == type))
            n++;
    return n;
}

typedef struct dns_buf {
    uint8_t b[1500];
    size_t n;
    bool overflow;
} dns_buf;

static inline void dns_put(dns_buf *o, const void *p, size_t n)
{
    if (o->n + n > sizeof o->b) {
        o->overflow = true;
        return;
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static inline void dns_put16(dns_buf *o, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    dns_put(o, b, 2);
}

static inline void dns_put32(dns_buf *o, uint32_t v)
{
    dns_put16(o, v >> 16);
    dns_put16(o, v & 0xffff);
}

static inline void dns_put_name(dns_buf *o, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        uint8_t l = (uint8_t)len;
        dns_put(o, &l, 1);
        dns_put(o, name, len);
        name += len + (dot ? 1 : 0);
    }
    dns_put(o, "", 1);
}

/* Parse the question's name (lower-cased, dotted) at `*off`. */
static inline int dns_get_name(const uint8_t *m, size_t n, size_t *off,
                               char *out, size_t size)
{
    size_t o = *off, k = 0;
    for (;;) {
        if (o >= n)
            return -1;
        uint8_t l = m[o++];
        if (l == 0)
            break;
        if (l > 63 || o + l > n || k + l + 2 > size)
            return -1;
        if (k)
            out[k++] = '.';
        for (uint8_t i = 0; i < l; i++) {
            char c = (char)m[o + i];
            out[k++] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
        o += l;
    }
    out[k] = '\0';
    *off = o;
    return 0;
}

static inline void dns_put_rr(dns_buf *o, const dns_rr *r)
{
    dns_put_name(o, r->name);
    dns_put16(o, (unsigned)r->type);
    dns_put16(o, 1);
    dns_put32(o, r->ttl);
    size_t len_at = o->n;
    dns_put16(o, 0);
    size_t start = o->n;
    uint8_t ip[16];
    switch (r->type) {
    case RR_A:
        inet_pton(AF_INET, r->data, ip);
        dns_put(o, ip, 4);
        break;
    case RR_AAAA:
        inet_pton(AF_INET6, r->data, ip);
        dns_put(o, ip, 16);
        break;
    case RR_CNAME:
        dns_put_name(o, r->data);
        break;
    case RR_MX:
        dns_put16(o, (unsigned)r->prio);
        dns_put_name(o, r->data);
        break;
    case RR_SRV:
        dns_put16(o, (unsigned)r->prio);
        dns_put16(o, (unsigned)r->weight);
        dns_put16(o, (unsigned)r->port);
        dns_put_name(o, r->data);
        break;
    case RR_TXT:
        for (const char *p = r->data; *p;) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            uint8_t l = (uint8_t)len;
            dns_put(o, &l, 1);
            dns_put(o, p, len);
            p += len + (bar ? 1 : 0);
        }
        break;
    }
    if (!o->overflow) {
        size_t rdlen = o->n - start;
        o->b[len_at] = (uint8_t)(rdlen >> 8);
        o->b[len_at + 1] = (uint8_t)rdlen;
    }
}

/* Build the reply to query `m` into `o`. false: do not answer. */
static inline bool dns_answer(dns_server *s, const uint8_t *m, size_t n,
                              bool tcp, dns_buf *o)
{
    if (n < 12)
        return false;
    char qname[256];
    size_t off = 12;
    if (dns_get_name(m, n, &off, qname, sizeof qname) < 0 || off + 4 > n)
        return false;
    int qtype = m[off] << 8 | m[off + 1];
    size_t qend = off + 4;
    if (s->queries < DNS_LOG_MAX) {
        snprintf(s->log[s->queries].name, sizeof s->log[0].name, "%.63s",
                 qname);
        s->log[s->queries].type = qtype;
    }
    s->queries++;
    s->tcp_queries += tcp;
    if (strcmp(qname, "silent.test") == 0)
        return false;
    unsigned rcode = 0, tc = 0;
    if (strcmp(qname, "servfail.test") == 0)
        rcode = 2;
    else if (strcmp(qname, "refused.test") == 0)
        rcode = 5;
    else if (strcmp(qname, "trunc.test") == 0 && !tcp)
        tc = 1;
    /* The answers: follow CNAMEs, then the records of the type. */
    const dns_rr *ans[32];
    size_t na = 0;
    bool known = false;
    const char *cur = qname;
    for (int hop = 0; rcode == 0 && !tc && hop < 8; hop++) {
        const dns_rr *cname = NULL;
        bool found = false;
        for (size_t i = 0; i < s->nrr; i++) {
            const dns_rr *r = &s->rrs[i];
            if (strcmp(r->name, cur) != 0)
                continue;
            known = true;
            if (r->type == qtype && na < 32) {
                ans[na++] = r;
                found = true;
            } else if (r->type == RR_CNAME) {
                cname = r;
            }
        }
        if (found || cname == NULL || qtype == RR_CNAME || na >= 32)
            break;
        ans[na++] = cname;
        cur = cname->data;
    }
    if (rcode == 0 && !tc && !known && strcmp(qname, "trunc.test") != 0 &&
        strcmp(qname, "badresp.test") != 0)
        rcode = 3;
    o->n = 0;
    o->overflow = false;
    dns_put(o, m, 2); /* id */
    unsigned rd = m[2] & 1u;
    dns_put16(o, 0x8000u | 0x0400u | (tc << 9) | (rd << 8) | 0x80u | rcode);
    dns_put16(o, 1);
    dns_put16(o, (unsigned)na);
    dns_put16(o, 0);
    dns_put16(o, 0);
    dns_put(o, m + 12, qend - 12);
    for (size_t i = 0; i < na; i++)
        dns_put_rr(o, ans[i]);
    if (strcmp(qname, "badresp.test") == 0 && !o->overflow) {
        o->b[7] = 1; /* one answer, then the packet ends */
        dns_put(o, "\xc0", 1);
    }
    return !o->overflow;
}

static int dns_udp_task(void *arg)
{
    dns_server *s = arg;
    for (;;) {
        uint8_t m[1500];
        cio_addr from;
        ssize_t n = cio_recvfrom(s->udp, m, sizeof m, &from);
        if (n < 0)
            return n == -ECANCELED ? 0 : (int)n;
        dns_buf o;
        if (dns_answer(s, m, (size_t)n, false, &o))
            (void)cio_sendto(s->udp, o.b, o.n, &from);
    }
}

/* One connection at a time: length-prefixed queries until end of
 * stream. */
static int dns_tcp_conn(dns_server *s, int fd)
{
    for (;;) {
        uint8_t len[2], m[1500];
        size_t got = 0;
        while (got < 2) {
            ssize_t n = cio_recv(fd, len + got, 2 - got, 0);
            if (n <= 0)
                return (int)n;
            got += (size_t)n;
        }
        size_t want = (size_t)(len[0] << 8 | len[1]);
        if (want > sizeof m)
            return -EMSGSIZE;
        for (got = 0; got < want;) {
            ssize_t n = cio_recv(fd, m + got, want - got, 0);
            if (n <= 0)
                return n == 0 ? -EPROTO : (int)n;
            got += (size_t)n;
        }
        dns_buf o;
        if (!dns_answer(s, m, want, true, &o))
            continue;
        uint8_t pre[2] = {(uint8_t)(o.n >> 8), (uint8_t)o.n};
        ssize_t rc = cio_send_all(fd, pre, 2, NULL);
        if (rc >= 0)
            rc = cio_send_all(fd, o.b, o.n, NULL);
        if (rc < 0)
            return (int)rc;
    }
}

static int dns_tcp_task(void *arg)
{
    dns_server *s = arg;
    for (;;) {
        int fd;
        int rc = cio_accept(s->tcp, &fd, NULL);
        if (rc < 0)
            return rc == -ECANCELED ? 0 : rc;
        rc = dns_tcp_conn(s, fd);
        cio_close(fd);
        if (rc == -ECANCELED)
            return 0;
    }
}

/* Bind UDP and TCP on one free loopback port and start serving `rrs`
 * (kept by pointer). 0 or an error. */
static inline int dns_server_start(dns_server *s, const dns_rr *rrs, size_t nrr)
{
    memset(s, 0, sizeof *s);
    s->rrs = rrs;
    s->nrr = nrr;
    s->udp = s->tcp = -1;
    int rc = -EADDRINUSE;
    for (int tries = 0; tries < 50 && rc == -EADDRINUSE; tries++) {
        cio_addr a;
        cio_addr_ip(&a, "127.0.0.1", 0);
        rc = cio_socket(&s->udp, AF_INET, SOCK_DGRAM, 0);
        if (rc < 0)
            return rc;
        if (bind(s->udp, &a.u.sa, a.len) != 0 ||
            getsockname(s->udp, &a.u.sa, &a.len) != 0) {
            rc = -errno;
            break;
        }
        s->port = cio_addr_port(&a);
        rc = cio_listen(&s->tcp, &a, 16, CIO_NO_REUSEADDR);
        if (rc < 0) {
            cio_close(s->udp);
            s->udp = -1;
        }
    }
    if (rc < 0) {
        if (s->udp >= 0)
            cio_close(s->udp);
        return rc;
    }
    snprintf(s->servers, sizeof s->servers, "127.0.0.1:%d", s->port);
    rc = cio_spawn(&s->utask, dns_udp_task, s);
    if (rc == 0)
        rc = cio_spawn(&s->ttask, dns_tcp_task, s);
    return rc;
}

/* Stop the tasks and close the sockets. Suspends. */
static inline void dns_server_stop(dns_server *s)
{
    cio_task *ts[2] = {s->utask, s->ttask};
    for (int i = 0; i < 2; i++)
        if (ts[i]) {
            cio_task_cancel(ts[i]);
            (void)cio_task_join(ts[i]);
            cio_task_free(ts[i]);
        }
    s->utask = s->ttask = NULL;
    if (s->udp >= 0)
        cio_close(s->udp);
    if (s->tcp >= 0)
        cio_close(s->tcp);
    s->udp = s->tcp = -1;
}

/* Point the running loop's resolver at `s`: no search domains, no hosts
 * file unless `hosts` is given, short timeouts. */
static inline int dns_server_use(const dns_server *s, const char *hosts)
{
    cio_dns_config cfg = {.servers = s->servers,
                          .timeout = 500 * CIO_MSEC,
                          .tries = 2,
                          .hosts_file = hosts ? hosts : "",
                          .no_search = true};
    return cio_dns_configure(&cfg);
}

#endif
