/* Name resolution. With c-ares, one channel per loop is driven by the
 * loop itself: c-ares says which sockets it wants watched (the socket
 * state callback), one-shot fd watches call ares_process_fd when they are
 * ready, and one timer follows ares_timeout. Its callbacks run in the
 * loop and only record results and wake the waiting task. A task that
 * gives up (cancelled, or a deadline) leaves its query behind marked as
 * abandoned: the callback then frees it and touches nothing else; once
 * no task waits for any query, the channel is told to cancel them all, so
 * their sockets close at once. Without c-ares, getaddrinfo(3) runs on the
 * executor's DNS pool. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cio/dns.h"
#include "internal.h"

#ifdef CIO_HAVE_CARES
#include <ares.h>
#endif

#define HOSTS_DEFAULT "/etc/hosts"
#define HOSTS_MAX_BYTES (4u << 20)
#define HOSTS_CHECK_INTERVAL CIO_SEC
#define CACHE_DEFAULT 256
#define NAME_MAX_LEN 253

/* ---- small helpers ------------------------------------------------------- */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Compare a name with a key, case-insensitively, ignoring one trailing
 * dot on the name. */
static bool name_eq(const char *name, size_t len, const char *key)
{
    size_t k = strlen(key);
    if (k != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lower(name[i]) != lower(key[i]))
            return false;
    return true;
}

/* Length of `host` without one trailing dot, or -EINVAL when it is not a
 * plausible DNS name: empty, too long, an empty or too long label. */
static int name_check(const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > NAME_MAX_LEN)
        return -EINVAL;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (host[i] == '.') {
            if (label == 0)
                return -EINVAL;
            label = 0;
        } else if (++label > 63 || (unsigned char)host[i] <= ' ') {
            return -EINVAL;
        }
    }
    return label == 0 ? -EINVAL : (int)n;
}

static bool is_localhost(const char *name, size_t len)
{
    static const char suffix[] = ".localhost";
    size_t s = sizeof suffix - 1;
    if (name_eq(name, len, "localhost"))
        return true;
    return len > s && name_eq(name + len - s, s, suffix);
}

static bool family_ok(int family)
{
    return family == AF_UNSPEC || family == AF_INET || family == AF_INET6;
}

static void addr_v4(cio_addr *a, const struct in_addr *ip)
{
    memset(a, 0, sizeof *a);
    a->u.in.sin_family = AF_INET;
    a->u.in.sin_addr = *ip;
    a->len = sizeof a->u.in;
}

static void addr_v6(cio_addr *a, const struct in6_addr *ip)
{
    memset(a, 0, sizeof *a);
    a->u.in6.sin6_family = AF_INET6;
    a->u.in6.sin6_addr = *ip;
    a->len = sizeof a->u.in6;
}

static void addr_set_port(cio_addr *a, int port)
{
    if (a->u.sa.sa_family == AF_INET)
        a->u.in.sin_port = htons((uint16_t)port);
    else
        a->u.in6.sin6_port = htons((uint16_t)port);
}

/* A list of `n` nodes in one allocation (freed by cio_addrinfo_free). */
static cio_addrinfo *list_new(size_t n)
{
    cio_addrinfo *v = cio__calloc(n, sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i + 1 < n; i++)
        v[i].next = &v[i + 1];
    return v;
}

void cio_addrinfo_free(cio_addrinfo *ai)
{
    cio__free(ai);
}

void cio_dns_free(void *records)
{
    cio__free(records);
}

/* A numeric address: 1 with `*out` filled, 0 if `host` is not numeric,
 * or an error. */
static int numeric(const char *host, int port, int family, cio_addrinfo **out)
{
    struct in_addr v4;
    struct in6_addr v6;
    cio_addr a;
    if (inet_pton(AF_INET, host, &v4) == 1)
        addr_v4(&a, &v4);
    else if (inet_pton(AF_INET6, host, &v6) == 1)
        addr_v6(&a, &v6);
    else
        return 0;
    if (family != AF_UNSPEC && family != a.u.sa.sa_family)
        return CIO_ENODATA;
    cio_addrinfo *ai = list_new(1);
    if (ai == NULL)
        return -ENOMEM;
    addr_set_port(&a, port);
    ai->addr = a;
    *out = ai;
    return 1;
}

/* The loopback addresses for "localhost" (RFC 6761 section 6.3). */
static int loopback(int port, int family, cio_addrinfo **out)
{
    size_t n = family == AF_UNSPEC ? 2 : 1;
    cio_addrinfo *ai = list_new(n);
    if (ai == NULL)
        return -ENOMEM;
    size_t i = 0;
    if (family != AF_INET)
        addr_v6(&ai[i++].addr, &in6addr_loopback);
    if (family != AF_INET6) {
        struct in_addr lo = {htonl(INADDR_LOOPBACK)};
        addr_v4(&ai[i].addr, &lo);
    }
    for (i = 0; i < n; i++)
        addr_set_port(&ai[i].addr, port);
    *out = ai;
    return 0;
}

/* ---- per-loop state ------------------------------------------------------ */

typedef struct host_ent {
    const char *name; /* into hosts.text */
    cio_addr addr;
} host_ent;

typedef struct hosts {
    bool loaded;
    int64_t checked; /* loop time of the last stat(2) */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char *text;
    host_ent *v;
    size_t n;
} hosts;

typedef struct cache_ent {
    struct cache_ent *hnext;       /* hash chain */
    struct cache_ent *prev, *next; /* LRU list, most recent first */
    uint32_t hash;
    int family;
    int64_t expires;
    size_t naddr;
    cio_addr *addrs; /* port 0; in the same allocation */
    char *name;      /* lower case, no trailing dot; same allocation */
} cache_ent;

typedef struct sockw sockw;

struct cio__dns {
    cio_loop *loop;
    cio_dns_config cfg; /* strings below are owned copies */
    char *servers;
    char *hosts_file;
    hosts hosts;
    cache_ent **buckets;
    size_t nbuckets;
    size_t ncache;
    cache_ent *lru_head, *lru_tail;
#ifdef CIO_HAVE_CARES
    ares_channel chan; /* NULL until the first lookup */
    sockw *socks;
    cio__timer timer;
    size_t inflight; /* queries c-ares holds */
    size_t waiting;  /* of those, queries a task waits for */
#endif
};

static void cache_clear(struct cio__dns *d)
{
    cache_ent *e = d->lru_head;
    while (e) {
        cache_ent *next = e->next;
        cio__free(e);
        e = next;
    }
    d->lru_head = d->lru_tail = NULL;
    d->ncache = 0;
    if (d->buckets)
        memset(d->buckets, 0, d->nbuckets * sizeof *d->buckets);
}

static void hosts_free(hosts *h)
{
    cio__free(h->text);
    cio__free(h->v);
    memset(h, 0, sizeof *h);
}

static int chan_close(struct cio__dns *d);

static void config_free(struct cio__dns *d)
{
    cio__free(d->servers);
    cio__free(d->hosts_file);
    d->servers = d->hosts_file = NULL;
    memset(&d->cfg, 0, sizeof d->cfg);
}

/* Copy `cfg` (NULL: defaults) into `d`. */
static int config_set(struct cio__dns *d, const cio_dns_config *cfg)
{
    cio_dns_config c = cfg ? *cfg : (cio_dns_config){0};
    if (c.servers == NULL)
        c.servers = getenv("CIO_DNS_SERVERS");
    char *servers = c.servers ? cio__strdup(c.servers) : NULL;
    char *hf = cio__strdup(c.hosts_file ? c.hosts_file : HOSTS_DEFAULT);
    if ((c.servers && servers == NULL) || hf == NULL) {
        cio__free(servers);
        cio__free(hf);
        return -ENOMEM;
    }
    config_free(d);
    d->cfg = c;
    d->servers = servers;
    d->hosts_file = hf;
    d->cfg.servers = servers;
    d->cfg.hosts_file = hf;
    if (d->cfg.cache_size == 0)
        d->cfg.cache_size = CACHE_DEFAULT;
    return 0;
}

static void dns_free(struct cio__dns *d)
{
    chan_close(d);
    cache_clear(d);
    cio__free(d->buckets);
    hosts_free(&d->hosts);
    config_free(d);
    cio__free(d);
}

void cio__dns_fini(cio_loop *l)
{
    if (l->dns) {
        dns_free(l->dns);
        l->dns = NULL;
    }
}

static struct cio__dns *dns_get(cio_loop *l)
{
    if (l->dns)
        return l->dns;
    struct cio__dns *d = cio__calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->loop = l;
    if (config_set(d, NULL) < 0) {
        cio__free(d);
        return NULL;
    }
    l->dns = d;
    return d;
}

/* ---- the hosts file ------------------------------------------------------ */

/* Parse "address name [aliases...]" lines, '#' starting a comment. */
static int hosts_parse(hosts *h)
{
    size_t cap = 0;
    char *p = h->text;
    while (*p) {
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        if (eol)
            *eol = '\0';
        char *hash = strchr(p, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *tok = strtok_r(p, " \t\r", &save);
        cio_addr a;
        struct in_addr v4;
        struct in6_addr v6;
        if (tok && inet_pton(AF_INET, tok, &v4) == 1)
            addr_v4(&a, &v4);
        else if (tok && inet_pton(AF_INET6, tok, &v6) == 1)
            addr_v6(&a, &v6);
        else
            tok = NULL;
        while (tok && (tok = strtok_r(NULL, " \t\r", &save)) != NULL) {
            if (h->n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                host_ent *v = cio__realloc(h->v, nc * sizeof *v);
                if (v == NULL)
                    return -ENOMEM;
                h->v = v;
                cap = nc;
            }
            h->v[h->n++] = (host_ent){.name = tok, .addr = a};
        }
        p = next;
    }
    return 0;
}

/* Make sure the parsed hosts file is current: re-read it when it changed,
 * looking (one stat(2)) at most once a second, as nscd does; glibc without
 * nscd reads the file at every lookup. */
static int hosts_load(struct cio__dns *d)
{
    hosts *h = &d->hosts;
    int64_t now = d->loop->now;
    if (h->loaded && now - h->checked < HOSTS_CHECK_INTERVAL)
        return 0;
    struct stat st;
    if (d->hosts_file[0] == '\0' || stat(d->hosts_file, &st) != 0) {
        hosts_free(h); /* none: an empty table, until it appears */
        h->loaded = true;
        h->checked = now;
        return 0;
    }
    if (h->loaded && h->dev == st.st_dev && h->ino == st.st_ino &&
        h->size == st.st_size && h->mtime.tv_sec == st.st_mtim.tv_sec &&
        h->mtime.tv_nsec == st.st_mtim.tv_nsec) {
        h->checked = now;
        return 0;
    }
    hosts_free(h);
    int fd = st.st_size > HOSTS_MAX_BYTES
                 ? -1
                 : open(d->hosts_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { /* unreadable or absurd: ignored, like a missing one */
        h->loaded = true;
        h->checked = now;
        return 0;
    }
    char *text = cio__malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (text == NULL)
        return -ENOMEM;
    text[got] = '\0';
    h->text = text;
    int rc = hosts_parse(h);
    if (rc < 0) {
        hosts_free(h);
        return rc;
    }
    h->loaded = true;
    h->checked = now;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    h->size = st.st_size;
    h->mtime = st.st_mtim;
    return 0;
}

/* Addresses of `name` in the hosts file, in file order: 1 with `*out`,
 * 0 when it has none of `family`, or an error. */
static int hosts_find(struct cio__dns *d, const char *name, size_t len,
                      int port, int family, cio_addrinfo **out)
{
    int rc = hosts_load(d);
    if (rc < 0)
        return rc;
    hosts *h = &d->hosts;
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        if ((family == AF_UNSPEC || family == h->v[i].addr.u.sa.sa_family) &&
            name_eq(name, len, h->v[i].name))
            n++;
    if (n == 0)
        return 0;
    cio_addrinfo *ai = list_new(n);
    if (ai == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++)
        if ((family == AF_UNSPEC || family == h->v[i].addr.u.sa.sa_family) &&
            name_eq(name, len, h->v[i].name)) {
            ai[k].addr = h->v[i].addr;
            addr_set_port(&ai[k].addr, port);
            k++;
        }
    *out = ai;
    return 1;
}

/* ---- the cache ----------------------------------------------------------- */

static uint32_t name_hash(const char *name, size_t len, int family)
{
    uint32_t h = 2166136261u ^ (uint32_t)family;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)lower(name[i])) * 16777619u;
    return h;
}

static void lru_unlink(struct cio__dns *d, cache_ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        d->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        d->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct cio__dns *d, cache_ent *e)
{
    e->prev = NULL;
    e->next = d->lru_head;
    if (d->lru_head)
        d->lru_head->prev = e;
    else
        d->lru_tail = e;
    d->lru_head = e;
}

static void cache_remove(struct cio__dns *d, cache_ent *e)
{
    cache_ent **pp = &d->buckets[e->hash & (d->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(d, e);
    d->ncache--;
    cio__free(e);
}

/* A fresh cached answer: 1 with `*out`, 0 on a miss, or -ENOMEM. */
static int cache_find(struct cio__dns *d, const char *name, size_t len,
                      int port, int family, cio_addrinfo **out)
{
    if (d->cfg.no_cache || d->buckets == NULL)
        return 0;
    uint32_t h = name_hash(name, len, family);
    cache_ent *e = d->buckets[h & (d->nbuckets - 1)];
    while (e && !(e->hash == h && e->family == family &&
                  name_eq(name, len, e->name)))
        e = e->hnext;
    if (e == NULL)
        return 0;
    int64_t now = d->loop->now;
    if (e->expires <= now) {
        cache_remove(d, e);
        return 0;
    }
    cio_addrinfo *ai = list_new(e->naddr);
    if (ai == NULL)
        return -ENOMEM;
    uint32_t ttl = (uint32_t)((e->expires - now + CIO_SEC - 1) / CIO_SEC);
    for (size_t i = 0; i < e->naddr; i++) {
        ai[i].addr = e->addrs[i];
        ai[i].ttl = ttl;
        addr_set_port(&ai[i].addr, port);
    }
    lru_unlink(d, e);
    lru_push_front(d, e);
    *out = ai;
    return 1;
}

#ifdef CIO_HAVE_CARES
/* Remember `ai` (all nodes share the TTL of the first) for `name`. Out of
 * memory only means no caching. */
static void cache_put(struct cio__dns *d, const char *name, size_t len,
                      int family, const cio_addrinfo *ai, size_t n)
{
    if (d->cfg.no_cache || n == 0 || ai->ttl == 0)
        return;
    if (d->buckets == NULL) {
        size_t nb = 16;
        while (nb < d->cfg.cache_size)
            nb *= 2;
        d->buckets = cio__calloc(nb, sizeof *d->buckets);
        if (d->buckets == NULL)
            return;
        d->nbuckets = nb;
    }
    uint32_t h = name_hash(name, len, family);
    for (cache_ent *e = d->buckets[h & (d->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->family == family &&
            name_eq(name, len, e->name)) {
            cache_remove(d, e);
            break;
        }
    while (d->ncache >= d->cfg.cache_size && d->lru_tail)
        cache_remove(d, d->lru_tail);
    cache_ent *e = cio__malloc(sizeof *e + n * sizeof(cio_addr) + len + 1);
    if (e == NULL)
        return;
    e->addrs = (cio_addr *)(e + 1);
    e->name = (char *)(e->addrs + n);
    for (size_t i = 0; i < len; i++)
        e->name[i] = lower(name[i]);
    e->name[len] = '\0';
    e->naddr = n;
    e->hash = h;
    e->family = family;
    e->expires = d->loop->now + (int64_t)ai->ttl * CIO_SEC;
    for (size_t i = 0; i < n; i++, ai = ai->next) {
        e->addrs[i] = ai->addr;
        addr_set_port(&e->addrs[i], 0);
    }
    e->hnext = d->buckets[h & (d->nbuckets - 1)];
    d->buckets[h & (d->nbuckets - 1)] = e;
    lru_push_front(d, e);
    d->ncache++;
}

#endif

void cio_dns_cache_clear(void)
{
    cio_loop *l = cio__loop;
    if (l && l->dns)
        cache_clear(l->dns);
}

/* ---- c-ares on the loop -------------------------------------------------- */

#ifdef CIO_HAVE_CARES

enum {
    DNS_CLASS_IN = 1,
    DNS_TYPE_MX = 15,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_SRV = 33,
};

static int ares_err(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ENODATA:
        return CIO_ENODATA;
    case ARES_ENOTFOUND:
        return CIO_ENOTFOUND;
    case ARES_EBADRESP:
        return CIO_EBADRESP;
    case ARES_ETIMEOUT:
        return -ETIMEDOUT;
    case ARES_ENOMEM:
        return -ENOMEM;
    case ARES_EBADNAME:
    case ARES_EBADQUERY:
    case ARES_EBADFAMILY:
    case ARES_EBADSTR:
    case ARES_EBADFLAGS:
    case ARES_ENONAME:
        return -EINVAL;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return -ECANCELED;
    default: /* SERVFAIL, REFUSED, NOTIMP, FORMERR, unreachable servers */
        return CIO_EDNS;
    }
}

/* A parser's error: a name it cannot expand is a malformed answer. */
static int parse_err(int status)
{
    if (status == ARES_EBADNAME || status == ARES_EBADSTR)
        return CIO_EBADRESP;
    return ares_err(status);
}

/* A socket c-ares asked us to watch. */
struct sockw {
    cio__fdw w;
    sockw *next;
    struct cio__dns *d;
    unsigned want;
    bool armed;
};

static sockw *sock_find(struct cio__dns *d, int fd)
{
    sockw *s = d->socks;
    while (s && s->w.fd != fd)
        s = s->next;
    return s;
}

static void sock_drop(struct cio__dns *d, sockw *s)
{
    sockw **pp = &d->socks;
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    if (s->armed)
        d->loop->bops->unwatch(d->loop->backend, &s->w);
    cio__free(s);
}

/* Arm what c-ares wants watched and the timer for its next timeout. Runs
 * after every call into c-ares. */
static void dns_sync(struct cio__dns *d)
{
    cio_loop *l = d->loop;
    for (sockw *s = d->socks; s; s = s->next)
        if (!s->armed && s->want) {
            s->w.events = s->want;
            if (l->bops->watch(l->backend, &s->w) == 0)
                s->armed = true;
        }
    struct timeval tv;
    if (d->chan && d->inflight > 0 && ares_timeout(d->chan, NULL, &tv)) {
        cio__loop_update_now(l);
        int64_t when = l->now + (int64_t)tv.tv_sec * CIO_SEC +
                       (int64_t)tv.tv_usec * CIO_USEC;
        cio__timer_arm(l, &d->timer, when);
    } else if (d->timer.idx) {
        cio__timer_disarm(l, &d->timer);
    }
}

static void sock_ready(cio__fdw *w, unsigned events)
{
    sockw *s = w->data;
    struct cio__dns *d = s->d;
    s->armed = false;
    if (events & CIO__EV_CLOSED)
        return;
    /* `s` may be freed inside ares_process_fd (the socket closes). */
    unsigned ev = events & s->want;
    int fd = w->fd;
    ares_process_fd(d->chan, ev & CIO_READABLE ? fd : ARES_SOCKET_BAD,
                    ev & CIO_WRITABLE ? fd : ARES_SOCKET_BAD);
    dns_sync(d);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct cio__dns *d = data;
    unsigned want =
        (readable ? CIO_READABLE : 0u) | (writable ? CIO_WRITABLE : 0u);
    sockw *s = sock_find(d, fd);
    if (want == 0) {
        if (s)
            sock_drop(d, s);
        return;
    }
    if (s == NULL) {
        s = cio__calloc(1, sizeof *s);
        if (s == NULL) {
            /* The query still ends, by its timeout. */
            cio__report("dns: out of memory watching socket %d", fd);
            return;
        }
        s->w = (cio__fdw){.ready = sock_ready, .fd = fd, .data = s};
        s->d = d;
        s->next = d->socks;
        d->socks = s;
    }
    if (s->armed && s->want != want) {
        d->loop->bops->unwatch(d->loop->backend, &s->w);
        s->armed = false;
    }
    s->want = want;
}

static void timer_fire(cio_loop *l, cio__timer *t)
{
    (void)l;
    struct cio__dns *d = CIO__CONTAINER(t, struct cio__dns, timer);
    ares_process_fd(d->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns_sync(d);
}

/* c-ares' sockets are made close-on-exec and closed through cio_close, so
 * the backend forgets its watches before the fd number can be reused. */
static ares_socket_t s_socket(int domain, int type, int protocol, void *arg)
{
    (void)arg;
    return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
}

static int s_close(ares_socket_t fd, void *arg)
{
    struct cio__dns *d = arg;
    sockw *s = sock_find(d, fd);
    if (s)
        sock_drop(d, s);
    return cio_close(fd) < 0 ? -1 : 0;
}

static int s_connect(ares_socket_t fd, const struct sockaddr *a,
                     ares_socklen_t len, void *arg)
{
    (void)arg;
    return connect(fd, a, len);
}

static ares_ssize_t s_recvfrom(ares_socket_t fd, void *buf, size_t n, int flags,
                               struct sockaddr *from, ares_socklen_t *fromlen,
                               void *arg)
{
    (void)arg;
    return recvfrom(fd, buf, n, flags, from, fromlen);
}

static ares_ssize_t s_sendv(ares_socket_t fd, const struct iovec *iov, int cnt,
                            void *arg)
{
    (void)arg;
    struct msghdr m = {.msg_iov = (struct iovec *)iov,
                       .msg_iovlen = (size_t)cnt};
    return sendmsg(fd, &m, MSG_NOSIGNAL);
}

static const struct ares_socket_functions sock_fns = {
    s_socket, s_close, s_connect, s_recvfrom, s_sendv,
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status;

/* c-ares allocates through cio's counting allocator, so its memory shows
 * in leak checks and allocation-failure tests. */
static void lib_init(void)
{
    lib_status = ares_library_init_mem(ARES_LIB_INIT_ALL, cio__malloc,
                                       cio__free, cio__realloc);
}

static int chan_open(struct cio__dns *d)
{
    if (d->chan)
        return 0;
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS)
        return ares_err(lib_status);
    struct ares_options o;
    memset(&o, 0, sizeof o);
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = d;
    o.lookups = (char *)"b"; /* the hosts file is read by cio_resolve */
    if (d->cfg.timeout > 0) {
        int64_t ms = (d->cfg.timeout + CIO_MSEC - 1) / CIO_MSEC;
        o.timeout = ms > INT32_MAX ? INT32_MAX : (int)ms;
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (d->cfg.tries > 0) {
        o.tries = d->cfg.tries;
        mask |= ARES_OPT_TRIES;
    }
    if (d->cfg.no_search)
        mask |= ARES_OPT_DOMAINS; /* ndomains 0 */
    ares_channel ch;
    int rc = ares_init_options(&ch, &o, mask);
    if (rc != ARES_SUCCESS)
        return ares_err(rc);
    if (d->servers) {
        rc = ares_set_servers_ports_csv(ch, d->servers);
        if (rc != ARES_SUCCESS) {
            ares_destroy(ch);
            return rc == ARES_ENOMEM ? -ENOMEM : -EINVAL;
        }
    }
    ares_set_socket_functions(ch, &sock_fns, d);
    d->chan = ch;
    d->timer.fire = timer_fire;
    return 0;
}

/* Destroying the channel ends its queries (their callbacks free the
 * abandoned ones) and closes its sockets. */
static int chan_close(struct cio__dns *d)
{
    if (d->chan == NULL)
        return 0;
    ares_destroy(d->chan);
    d->chan = NULL;
    while (d->socks)
        sock_drop(d, d->socks);
    if (d->timer.idx)
        cio__timer_disarm(d->loop, &d->timer);
    return 0;
}

/* ---- queries ------------------------------------------------------------- */

typedef struct dq {
    struct cio__dns *d;
    cio_task *task; /* the waiting task; NULL once it gave up */
    bool done;
    int status;
    struct ares_addrinfo *ai;
    unsigned char *buf; /* a record lookup's answer */
    int len;
} dq;

static void dq_free(dq *q)
{
    if (q->ai)
        ares_freeaddrinfo(q->ai);
    cio__free(q->buf);
    cio__free(q);
}

/* A query ended. false if nobody waits for it any more (free it). */
static bool dq_end(dq *q, int status)
{
    q->d->inflight--;
    if (q->task == NULL)
        return false;
    q->d->waiting--;
    q->done = true;
    q->status = status;
    cio__wake(q->task, 0);
    return true;
}

static void gai_cb(void *arg, int status, int timeouts,
                   struct ares_addrinfo *res)
{
    (void)timeouts;
    dq *q = arg;
    q->ai = res;
    if (!dq_end(q, ares_err(status)))
        dq_free(q);
}

static void query_cb(void *arg, int status, int timeouts, unsigned char *abuf,
                     int alen)
{
    (void)timeouts;
    dq *q = arg;
    if (q->task && status == ARES_SUCCESS && abuf && alen > 0) {
        q->buf = cio__malloc((size_t)alen);
        if (q->buf) {
            memcpy(q->buf, abuf, (size_t)alen);
            q->len = alen;
        } else {
            status = ARES_ENOMEM;
        }
    }
    if (!dq_end(q, ares_err(status)))
        dq_free(q);
}

/* The waiting task was interrupted: leave the query to its callback. */
static void dq_unlink(cio_task *t)
{
    dq *q = (dq *)t->wait_obj;
    q->task = NULL;
    q->d->waiting--;
}

/* Start a query with `start`, then wait for it. 0 with `*out` the ended
 * query (the caller frees it); -ECANCELED when interrupted (the query is
 * abandoned); -ENOMEM. */
static int dq_run(cio_task *t, struct cio__dns *d,
                  void (*start)(struct cio__dns *d, dq *q, void *arg),
                  void *arg, dq **out)
{
    int rc = chan_open(d);
    if (rc < 0)
        return rc;
    dq *q = cio__calloc(1, sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    q->d = d;
    q->task = t;
    d->inflight++;
    d->waiting++;
    start(d, q, arg); /* the callback may run inside */
    dns_sync(d);
    if (!q->done) {
        t->unlink = dq_unlink;
        t->unlink_try = NULL;
        t->wait_q = NULL;
        rc = cio__park(t, CIO__W_FUTURE, q, CIO_NEVER, 0);
        if (rc < 0) {
            /* Once no task waits, end every query now so that their
             * sockets close instead of lingering until their timeouts. */
            if (d->waiting == 0 && d->inflight > 0) {
                ares_cancel(d->chan);
                dns_sync(d);
            }
            return rc;
        }
    }
    *out = q;
    return 0;
}

typedef struct gai_args {
    const char *host;
    int family;
} gai_args;

static void gai_start(struct cio__dns *d, dq *q, void *arg)
{
    gai_args *a = arg;
    /* RFC 6724 sorting matters between families; within one it would
     * cost a socket, connect and getsockname per address. */
    struct ares_addrinfo_hints hints = {
        .ai_family = a->family,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = a->family == AF_UNSPEC ? 0 : ARES_AI_NOSORT};
    ares_getaddrinfo(d->chan, a->host, NULL, &hints, gai_cb, q);
}

/* The addresses of an answer, with the smallest TTL on the way. */
static int gai_convert(const struct ares_addrinfo *res, int port,
                       cio_addrinfo **out, size_t *count)
{
    size_t n = 0;
    int64_t ttl = INT32_MAX;
    for (const struct ares_addrinfo_node *p = res->nodes; p; p = p->ai_next)
        if (p->ai_family == AF_INET || p->ai_family == AF_INET6) {
            n++;
            if (p->ai_ttl < ttl)
                ttl = p->ai_ttl;
        }
    for (const struct ares_addrinfo_cname *c = res->cnames; c; c = c->next)
        if (c->ttl < ttl)
            ttl = c->ttl;
    if (n == 0)
        return CIO_ENODATA;
    cio_addrinfo *ai = list_new(n);
    if (ai == NULL)
        return -ENOMEM;
    size_t i = 0;
    for (const struct ares_addrinfo_node *p = res->nodes; p; p = p->ai_next) {
        if (p->ai_family == AF_INET)
            addr_v4(&ai[i].addr,
                    &((const struct sockaddr_in *)(const void *)p->ai_addr)
                         ->sin_addr);
        else if (p->ai_family == AF_INET6)
            addr_v6(&ai[i].addr,
                    &((const struct sockaddr_in6 *)(const void *)p->ai_addr)
                         ->sin6_addr);
        else
            continue;
        addr_set_port(&ai[i].addr, port);
        ai[i].ttl = ttl < 0 ? 0 : (uint32_t)ttl;
        i++;
    }
    *out = ai;
    *count = n;
    return 0;
}

static int lookup(cio_task *t, struct cio__dns *d, const char *host, size_t len,
                  int port, int family, cio_addrinfo **out)
{
    gai_args a = {host, family};
    dq *q;
    int rc = dq_run(t, d, gai_start, &a, &q);
    if (rc < 0)
        return rc;
    rc = q->status;
    size_t n = 0;
    if (rc == 0 && q->ai)
        rc = gai_convert(q->ai, port, out, &n);
    else if (rc == 0)
        rc = CIO_ENODATA;
    dq_free(q);
    if (rc == 0) {
        cio__loop_update_now(d->loop);
        cache_put(d, host, len, family, *out, n);
    }
    return rc;
}

/* ---- record lookups ------------------------------------------------------ */

typedef struct query_args {
    const char *name;
    int type;
} query_args;

static void query_start(struct cio__dns *d, dq *q, void *arg)
{
    query_args *a = arg;
    ares_query(d->chan, a->name, DNS_CLASS_IN, a->type, query_cb, q);
}

/* Ask for the records of `type`: 0 with the answer in `*out`. */
static int record_query(const char *name, int type, dq **out)
{
    CIO__SELF_OR_RETURN(t);
    if (name == NULL)
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    rc = name_check(name);
    if (rc < 0)
        return rc;
    struct cio__dns *d = dns_get(t->loop);
    if (d == NULL)
        return -ENOMEM;
    query_args a = {name, type};
    dq *q;
    rc = dq_run(t, d, query_start, &a, &q);
    if (rc < 0)
        return rc;
    if (q->status < 0) {
        rc = q->status;
        dq_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int cio_resolve_srv(const char *name, cio_dns_srv **out, size_t *count)
{
    if (out == NULL || count == NULL)
        return -EINVAL;
    dq *q;
    int rc = record_query(name, DNS_TYPE_SRV, &q);
    if (rc < 0)
        return rc;
    struct ares_srv_reply *r = NULL;
    rc = parse_err(ares_parse_srv_reply(q->buf, q->len, &r));
    dq_free(q);
    if (rc < 0)
        return rc;
    size_t n = 0, bytes = 0;
    for (struct ares_srv_reply *p = r; p; p = p->next, n++)
        bytes += strlen(p->host) + 1;
    cio_dns_srv *v = n ? cio__malloc(n * sizeof *v + bytes) : NULL;
    if (v) {
        char *s = (char *)(v + n);
        size_t i = 0;
        for (struct ares_srv_reply *p = r; p; p = p->next, i++) {
            size_t k = strlen(p->host) + 1;
            memcpy(s, p->host, k);
            v[i] = (cio_dns_srv){.target = s,
                                 .priority = p->priority,
                                 .weight = p->weight,
                                 .port = p->port};
            s += k;
        }
    }
    ares_free_data(r);
    if (v == NULL)
        return n ? -ENOMEM : CIO_ENODATA;
    *out = v;
    *count = n;
    return 0;
}

int cio_resolve_mx(const char *name, cio_dns_mx **out, size_t *count)
{
    if (out == NULL || count == NULL)
        return -EINVAL;
    dq *q;
    int rc = record_query(name, DNS_TYPE_MX, &q);
    if (rc < 0)
        return rc;
    struct ares_mx_reply *r = NULL;
    rc = parse_err(ares_parse_mx_reply(q->buf, q->len, &r));
    dq_free(q);
    if (rc < 0)
        return rc;
    size_t n = 0, bytes = 0;
    for (struct ares_mx_reply *p = r; p; p = p->next, n++)
        bytes += strlen(p->host) + 1;
    cio_dns_mx *v = n ? cio__malloc(n * sizeof *v + bytes) : NULL;
    if (v) {
        char *s = (char *)(v + n);
        size_t i = 0;
        for (struct ares_mx_reply *p = r; p; p = p->next, i++) {
            size_t k = strlen(p->host) + 1;
            memcpy(s, p->host, k);
            v[i] = (cio_dns_mx){.host = s, .priority = p->priority};
            s += k;
        }
    }
    ares_free_data(r);
    if (v == NULL)
        return n ? -ENOMEM : CIO_ENODATA;
    *out = v;
    *count = n;
    return 0;
}

int cio_resolve_txt(const char *name, cio_dns_txt **out, size_t *count)
{
    if (out == NULL || count == NULL)
        return -EINVAL;
    dq *q;
    int rc = record_query(name, DNS_TYPE_TXT, &q);
    if (rc < 0)
        return rc;
    struct ares_txt_ext *r = NULL;
    rc = parse_err(ares_parse_txt_reply_ext(q->buf, q->len, &r));
    dq_free(q);
    if (rc < 0)
        return rc;
    /* A record is its first chunk (record_start) and the chunks after. */
    size_t n = 0, bytes = 0;
    for (struct ares_txt_ext *p = r; p; p = p->next) {
        if (p->record_start || n == 0) {
            n++;
            bytes++;
        }
        bytes += p->length;
    }
    cio_dns_txt *v = n ? cio__malloc(n * sizeof *v + bytes) : NULL;
    if (v) {
        char *s = (char *)(v + n);
        size_t i = 0;
        for (struct ares_txt_ext *p = r; p; p = p->next) {
            if (p->record_start || i == 0) {
                if (i > 0)
                    *s++ = '\0';
                v[i++] = (cio_dns_txt){.text = s, .len = 0};
            }
            memcpy(s, p->txt, p->length);
            s += p->length;
            v[i - 1].len += p->length;
        }
        *s = '\0';
    }
    ares_free_data(r);
    if (v == NULL)
        return n ? -ENOMEM : CIO_ENODATA;
    *out = v;
    *count = n;
    return 0;
}

#else /* !CIO_HAVE_CARES: getaddrinfo(3) on the executor */

static int chan_close(struct cio__dns *d)
{
    (void)d;
    return 0;
}

typedef struct gai_job {
    const char *host;
    int family;
    struct addrinfo *res;
} gai_job;

static int gai_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
        return CIO_ENOTFOUND;
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return CIO_ENODATA;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return -errno;
    default: /* EAI_AGAIN, EAI_FAIL */
        return CIO_EDNS;
    }
}

static int gai_run(void *arg)
{
    gai_job *j = arg;
    struct addrinfo hints = {.ai_family = j->family,
                             .ai_socktype = SOCK_STREAM};
    return gai_err(getaddrinfo(j->host, NULL, &hints, &j->res));
}

static int lookup(cio_task *t, struct cio__dns *d, const char *host, size_t len,
                  int port, int family, cio_addrinfo **out)
{
    (void)t;
    (void)d;
    (void)len;
    gai_job j = {host, family, NULL};
    int rc = cio_to_thread_pool(cio_pool_builtin(CIO_POOL_DNS), gai_run, &j);
    size_t n = 0;
    for (struct addrinfo *p = j.res; rc == 0 && p; p = p->ai_next)
        if (p->ai_family == AF_INET || p->ai_family == AF_INET6)
            n++;
    if (rc == 0 && n == 0)
        rc = CIO_ENODATA;
    cio_addrinfo *ai = rc == 0 ? list_new(n) : NULL;
    if (rc == 0 && ai == NULL)
        rc = -ENOMEM;
    size_t i = 0;
    for (struct addrinfo *p = j.res; ai && p; p = p->ai_next) {
        if (p->ai_family == AF_INET)
            addr_v4(&ai[i].addr,
                    &((struct sockaddr_in *)(void *)p->ai_addr)->sin_addr);
        else if (p->ai_family == AF_INET6)
            addr_v6(&ai[i].addr,
                    &((struct sockaddr_in6 *)(void *)p->ai_addr)->sin6_addr);
        else
            continue;
        addr_set_port(&ai[i++].addr, port);
    }
    if (j.res)
        freeaddrinfo(j.res);
    if (rc == 0)
        *out = ai;
    return rc;
}

int cio_resolve_srv(const char *name, cio_dns_srv **out, size_t *count)
{
    return name && out && count ? -ENOTSUP : -EINVAL;
}

int cio_resolve_mx(const char *name, cio_dns_mx **out, size_t *count)
{
    return name && out && count ? -ENOTSUP : -EINVAL;
}

int cio_resolve_txt(const char *name, cio_dns_txt **out, size_t *count)
{
    return name && out && count ? -ENOTSUP : -EINVAL;
}

#endif /* CIO_HAVE_CARES */

/* ---- public entry points ------------------------------------------------- */

const char *cio_dns_resolver(void)
{
#ifdef CIO_HAVE_CARES
    return "c-ares";
#else
    return "getaddrinfo";
#endif
}

int cio_resolve(const char *host, int port, int family, cio_addrinfo **out)
{
    CIO__SELF_OR_RETURN(t);
    if (host == NULL || out == NULL || port < 0 || port > 65535 ||
        !family_ok(family))
        return -EINVAL;
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    rc = numeric(host, port, family, out);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    int len = name_check(host);
    if (len < 0)
        return len;
    struct cio__dns *d = dns_get(t->loop);
    if (d == NULL)
        return -ENOMEM;
    cio__loop_update_now(t->loop);
    rc = hosts_find(d, host, (size_t)len, port, family, out);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (is_localhost(host, (size_t)len))
        return loopback(port, family, out);
    rc = cache_find(d, host, (size_t)len, port, family, out);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    return lookup(t, d, host, (size_t)len, port, family, out);
}

int cio_dns_configure(const cio_dns_config *cfg)
{
    cio_loop *l = cio__loop;
    if (l == NULL)
        return CIO_ENOTASK;
    if (cfg && (cfg->timeout < 0 || cfg->tries < 0))
        return -EINVAL;
    struct cio__dns *d = dns_get(l);
    if (d == NULL)
        return -ENOMEM;
#ifdef CIO_HAVE_CARES
    if (d->waiting > 0)
        return -EBUSY;
#endif
    chan_close(d);
    cache_clear(d);
    cio__free(d->buckets);
    d->buckets = NULL;
    d->nbuckets = 0;
    hosts_free(&d->hosts);
    int rc = config_set(d, cfg);
    if (rc < 0)
        return rc;
#ifdef CIO_HAVE_CARES
    rc = chan_open(d);
    if (rc < 0)
        (void)config_set(d, NULL);
#endif
    return rc;
}
