/* cio/dns.h: asynchronous name resolution and connecting by name.
 *
 * Lookups run on the loop without threads (c-ares, one resolver per loop,
 * created at the first lookup and freed when the loop closes). Without
 * c-ares the address lookups go to getaddrinfo(3) on the executor's DNS
 * pool and the record lookups (SRV, MX, TXT) return -ENOTSUP.
 *
 * Names are looked up the way the system does: numeric addresses are
 * parsed without any lookup; then the hosts file (/etc/hosts) is read;
 * "localhost" and names under ".localhost" that it does not list are the
 * loopback addresses (RFC 6761) and never reach the network; other names
 * go to DNS, with the servers, search domains, ndots, timeout and
 * attempts of /etc/resolv.conf. Answers from DNS are cached per loop for
 * their TTL (failures are not cached).
 *
 * Errors of every lookup: CIO_ENOTFOUND (the name does not exist,
 * NXDOMAIN), CIO_ENODATA (it exists but has no record of the asked type),
 * CIO_EDNS (the servers failed, refused or could not be reached),
 * CIO_EBADRESP (a malformed answer), -ETIMEDOUT (no answer within the
 * resolver's own timeout and attempts), -ECANCELED (the caller was
 * cancelled or a deadline of its scopes passed: the lookup is abandoned
 * and leaves nothing behind), -EINVAL (bad arguments, a name longer than
 * 253 bytes or with an empty label), -ENOMEM, CIO_ENOTASK. */
#ifndef CIO_DNS_H
#define CIO_DNS_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Configuration ------------------------------------------------------- */

/* Per-loop resolver settings. A zeroed struct means the system's settings:
 * every field left 0 or NULL keeps its default. */
typedef struct cio_dns_config {
    /* Name servers, comma-separated: "127.0.0.1:5353,[::1]:53,10.0.0.1".
     * NULL: the environment variable CIO_DNS_SERVERS if set, else
     * /etc/resolv.conf. */
    const char *servers;
    /* Time to wait for an answer before the next attempt; 0: resolv.conf's
     * "options timeout", else 5 s. Rounded to milliseconds. */
    int64_t timeout;
    /* Attempts per server; 0: resolv.conf's "options attempts", else 3
     * (c-ares' default). */
    int tries;
    /* The hosts file; NULL: /etc/hosts; "": none. It is read again when
     * it changes, which is looked at once a second at most. */
    const char *hosts_file;
    /* true: names are asked as given, without resolv.conf's search
     * domains. */
    bool no_search;
    /* true: do not cache answers. */
    bool no_cache;
    /* Most answers kept in the cache (least recently used go first);
     * 0: 256. */
    size_t cache_size;
} cio_dns_config;

/* Replace the running loop's resolver settings with `cfg` (copied; NULL
 * restores the defaults), make its resolver anew (reading
 * /etc/resolv.conf again) and empty the cache. 0; -EBUSY while lookups
 * are in flight on this loop (nothing changes); -EINVAL for a negative
 * timeout or tries (nothing changes) or a server list that cannot be
 * parsed (the defaults apply then); -ENOMEM; CIO_ENOTASK outside a loop.
 * A bad CIO_DNS_SERVERS makes every DNS lookup fail with -EINVAL. Does
 * not suspend. */
int cio_dns_configure(const cio_dns_config *cfg);

/* Forget every cached answer of the running loop. Does not suspend. */
void cio_dns_cache_clear(void);

/* The resolver cio was built with: "c-ares", or "getaddrinfo" (then the
 * record lookups return -ENOTSUP and the servers, timeout, tries and
 * cache settings do not apply). Static string. Does not suspend. */
const char *cio_dns_resolver(void);

/* ---- Addresses (asyncio loop.getaddrinfo) -------------------------------- */

/* One address of a lookup's answer, in a list. */
typedef struct cio_addrinfo {
    struct cio_addrinfo *next;
    cio_addr addr; /* IPv4 or IPv6, with the port asked for */
    /* Seconds this address may still be cached (the smallest TTL on the
     * way, CNAMEs included); 0 for numeric names and the hosts file. */
    uint32_t ttl;
} cio_addrinfo;

/* Look up the addresses of `host` for `port` (0-65535). `family` is
 * AF_UNSPEC (IPv6 and IPv4; DNS answers come in the order of RFC 6724,
 * like getaddrinfo), AF_INET or AF_INET6. A hit in the loop's cache
 * answers at once. 0 with `*out` a list of at least one address, which
 * the caller frees with cio_addrinfo_free; errors as listed at the top of
 * this file, and -EINVAL for a bad port or family. Suspends (a
 * cancellation point even on a cache hit). */
int cio_resolve(const char *host, int port, int family, cio_addrinfo **out);

/* Free a list from cio_resolve. NULL is ignored. */
void cio_addrinfo_free(cio_addrinfo *ai);

/* ---- Records ------------------------------------------------------------- */

/* The record lookups ask DNS for `name` exactly as given (no search
 * domains, no hosts file, no cache). Each fills `*out` with an array of
 * `*count` (>= 1) records in the order of the answer, freed at once with
 * cio_dns_free; strings point into that allocation. Errors as at the top
 * of this file; -ENOTSUP without c-ares. Suspend. */

typedef struct cio_dns_srv {
    const char *target; /* host name, without the final dot */
    int priority, weight, port;
} cio_dns_srv;

typedef struct cio_dns_mx {
    const char *host;
    int priority;
} cio_dns_mx;

/* One TXT record: its character-strings joined, NUL-terminated (`len`
 * excludes the NUL; the text may hold NUL bytes of its own). */
typedef struct cio_dns_txt {
    const char *text;
    size_t len;
} cio_dns_txt;

/* SRV records of `name` (e.g. "_ldap._tcp.example.com"). Suspends. */
int cio_resolve_srv(const char *name, cio_dns_srv **out, size_t *count);
/* MX records of `name`. Suspends. */
int cio_resolve_mx(const char *name, cio_dns_mx **out, size_t *count);
/* TXT records of `name`. Suspends. */
int cio_resolve_txt(const char *name, cio_dns_txt **out, size_t *count);

/* Free an array from cio_resolve_srv, _mx or _txt. NULL is ignored. */
void cio_dns_free(void *records);

/* ---- Connecting by name (asyncio.open_connection with happy eyeballs) ---- */

typedef struct cio_connect_opts {
    /* AF_UNSPEC (0: both), AF_INET or AF_INET6. */
    int family;
    /* RFC 8305 "Connection Attempt Delay": how long an attempt runs alone
     * before the next address is tried beside it. 0: 250 ms. Negative:
     * -EINVAL. */
    int64_t happy_eyeballs_delay;
    /* A limit on the whole call, lookup included; 0: none (the caller's
     * scopes still apply). Its expiry gives -ETIMEDOUT. */
    int64_t timeout;
    /* Options of the stream cio_open_connection_host makes. */
    cio_stream_opts stream;
} cio_connect_opts;

/* Connect a TCP socket to `host` (a name, or a numeric address) and
 * `port`. The addresses are looked up with cio_resolve and tried the
 * RFC 8305 way: families interleaved (IPv6 first when the answer starts
 * with it), each attempt started `happy_eyeballs_delay` after the
 * previous one or as soon as that one fails; the first to connect wins,
 * the others are cancelled and their sockets closed before this returns.
 * 0 with `*out` a connected, non-blocking, close-on-exec socket with
 * TCP_NODELAY on (the caller closes it); the lookup's errors; the error
 * of the first address tried when every attempt fails (-ECONNREFUSED,
 * -ENETUNREACH, ...); -ETIMEDOUT when opts->timeout passes; -ECANCELED
 * (nothing is left open); -EINVAL (NULLs, a bad port or option).
 * `opts` may be NULL. Suspends. */
int cio_connect_host(int *out, const char *host, int port,
                     const cio_connect_opts *opts);

/* cio_connect_host, then wrap the socket in a stream with opts->stream.
 * Errors as cio_connect_host and cio_stream_open. Suspends. */
int cio_open_connection_host(cio_stream **out, const char *host, int port,
                             const cio_connect_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
