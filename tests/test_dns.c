/* The resolver against a fake DNS server on loopback (tests/dns_server.h):
 * record types, errors, timeouts, TCP fallback, cancellation, the cache
 * and the hosts file. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "dns_server.h"
#include "test.h"
#include "internal.h"

static const dns_rr zone[] = {
    {"www.test", RR_A, 300, "10.0.0.1", 0, 0, 0},
    {"www.test", RR_AAAA, 300, "fd00::1", 0, 0, 0},
    {"two.test", RR_A, 300, "10.0.0.2", 0, 0, 0},
    {"two.test", RR_A, 300, "10.0.0.3", 0, 0, 0},
    {"short.test", RR_A, 5, "10.0.0.5", 0, 0, 0},
    {"alias.test", RR_CNAME, 60, "mid.test", 0, 0, 0},
    {"mid.test", RR_CNAME, 120, "www.test", 0, 0, 0},
    {"v6only.test", RR_AAAA, 300, "fd00::6", 0, 0, 0},
    {"trunc.test", RR_A, 300, "10.0.0.9", 0, 0, 0},
    {"_http._tcp.test", RR_SRV, 300, "web1.test", 10, 60, 8080},
    {"_http._tcp.test", RR_SRV, 300, "web2.test", 20, 40, 8081},
    {"mail.test", RR_MX, 300, "mx1.test", 10, 0, 0},
    {"mail.test", RR_MX, 300, "mx2.test", 20, 0, 0},
    {"txt.test", RR_TXT, 300, "v=spf1 -all", 0, 0, 0},
    {"txt.test", RR_TXT, 300, "part one|part two", 0, 0, 0},
};
#define NZONE (sizeof zone / sizeof zone[0])

static int ip_of(const cio_addrinfo *ai, char *buf, size_t size)
{
    const void *src = ai->addr.u.sa.sa_family == AF_INET
                          ? (const void *)&ai->addr.u.in.sin_addr
                          : (const void *)&ai->addr.u.in6.sin6_addr;
    return inet_ntop(ai->addr.u.sa.sa_family, src, buf, (socklen_t)size)
               ? 0
               : -errno;
}

static size_t list_len(const cio_addrinfo *ai)
{
    size_t n = 0;
    for (; ai; ai = ai->next)
        n++;
    return n;
}

/* Resolve `host` and check that the first address is `ip` and the list
 * has `n` entries. */
static int expect(const char *host, int family, const char *ip, size_t n)
{
    cio_addrinfo *ai = NULL;
    int rc = cio_resolve(host, 443, family, &ai);
    if (rc < 0)
        return rc;
    char buf[64];
    rc = ip_of(ai, buf, sizeof buf);
    if (rc == 0 && strcmp(buf, ip) != 0) {
        fprintf(stderr, "  %s: got %s, want %s\n", host, buf, ip);
        rc = -EPROTO;
    }
    if (rc == 0 && list_len(ai) != n) {
        fprintf(stderr, "  %s: %zu addresses, want %zu\n", host, list_len(ai),
                n);
        rc = -EPROTO;
    }
    if (rc == 0 && cio_addr_port(&ai->addr) != 443)
        rc = -EPROTO;
    cio_addrinfo_free(ai);
    return rc;
}

TEST(dns_a_aaaa_and_both)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    ASSERT_OK(expect("www.test", AF_INET, "10.0.0.1", 1));
    ASSERT_OK(expect("www.test", AF_INET6, "fd00::1", 1));
    ASSERT_OK(expect("two.test", AF_INET, "10.0.0.2", 2));
    /* Both families: one A and one AAAA query, two addresses. */
    cio_addrinfo *ai;
    ASSERT_OK(cio_resolve("WWW.Test.", 80, AF_UNSPEC, &ai));
    ASSERT_EQ(2, list_len(ai));
    ASSERT_TRUE(ai->addr.u.sa.sa_family != ai->next->addr.u.sa.sa_family);
    ASSERT_EQ(300, ai->ttl);
    cio_addrinfo_free(ai);
    /* A name with only AAAA records, asked for IPv4. */
    ASSERT_EQ(CIO_ENODATA, cio_resolve("v6only.test", 80, AF_INET, &ai));
    dns_server_stop(&s);
    return 0;
}

TEST(dns_cname_chain_takes_smallest_ttl)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    cio_addrinfo *ai;
    ASSERT_OK(cio_resolve("alias.test", 80, AF_INET, &ai));
    char buf[64];
    ASSERT_OK(ip_of(ai, buf, sizeof buf));
    ASSERT_STR_EQ("10.0.0.1", buf);
    ASSERT_EQ(60, ai->ttl);
    cio_addrinfo_free(ai);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_errors_map_to_codes)
{
    NEED_CARES();
    size_t n;
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    cio_addrinfo *ai;
    ASSERT_EQ(CIO_ENOTFOUND, cio_resolve("nope.test", 80, AF_INET, &ai));
    ASSERT_EQ(CIO_ENOTFOUND, cio_resolve("nope.test", 80, AF_UNSPEC, &ai));
    ASSERT_EQ(CIO_EDNS, cio_resolve("servfail.test", 80, AF_INET, &ai));
    ASSERT_EQ(CIO_EDNS, cio_resolve("refused.test", 80, AF_INET, &ai));
    ASSERT_EQ(CIO_EBADRESP, cio_resolve("badresp.test", 80, AF_INET, &ai));
    cio_dns_txt *txt;
    ASSERT_EQ(CIO_EBADRESP, cio_resolve_txt("badresp.test", &txt, &n));
    cio_dns_mx *mx;
    ASSERT_EQ(CIO_ENODATA, cio_resolve_mx("www.test", &mx, &n));
    ASSERT_EQ(CIO_ENOTFOUND, cio_resolve_mx("nope.test", &mx, &n));
    /* Failures are not cached: the server is asked again. */
    int before = dns_server_count(&s, "nope.test", RR_A);
    ASSERT_EQ(CIO_ENOTFOUND, cio_resolve("nope.test", 80, AF_INET, &ai));
    ASSERT_EQ(before + 1, dns_server_count(&s, "nope.test", RR_A));
    dns_server_stop(&s);
    return 0;
}

TEST(dns_bad_arguments)
{
    cio_addrinfo *ai;
    ASSERT_EQ(-EINVAL, cio_resolve(NULL, 80, AF_INET, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve("a.test", 80, AF_INET, NULL));
    ASSERT_EQ(-EINVAL, cio_resolve("a.test", -1, AF_INET, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve("a.test", 65536, AF_INET, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve("a.test", 80, AF_UNIX, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve("", 80, AF_INET, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve("a..test", 80, AF_INET, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve(".", 80, AF_INET, &ai));
    ASSERT_EQ(-EINVAL, cio_resolve("has space.test", 80, AF_INET, &ai));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_EQ(-EINVAL, cio_resolve(longname, 80, AF_INET, &ai));
    for (int i = 0; i < 5; i++)
        longname[i * 60 + 59] = '.';
    longname[254] = '\0'; /* 254 bytes with no final dot: too long */
    ASSERT_EQ(-EINVAL, cio_resolve(longname, 80, AF_INET, &ai));
    cio_dns_srv *srv;
    size_t n;
    ASSERT_EQ(-EINVAL, cio_resolve_srv(NULL, &srv, &n));
    ASSERT_EQ(-EINVAL, cio_resolve_srv("x.test", NULL, &n));
    cio_dns_config bad = {.timeout = -1};
    ASSERT_EQ(-EINVAL, cio_dns_configure(&bad));
    cio_dns_config bad_servers = {.servers = "not an address"};
    if (HAVE_CARES())
        ASSERT_EQ(-EINVAL, cio_dns_configure(&bad_servers));
    /* The defaults are back after a failed configuration. */
    ASSERT_OK(cio_resolve("127.0.0.1", 1, AF_INET, &ai));
    cio_addrinfo_free(ai);
    return 0;
}

TEST(dns_srv_mx_txt_records)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    cio_dns_srv *srv;
    size_t n;
    ASSERT_OK(cio_resolve_srv("_http._tcp.test", &srv, &n));
    ASSERT_EQ(2, n);
    ASSERT_STR_EQ("web1.test", srv[0].target);
    ASSERT_EQ(10, srv[0].priority);
    ASSERT_EQ(60, srv[0].weight);
    ASSERT_EQ(8080, srv[0].port);
    ASSERT_STR_EQ("web2.test", srv[1].target);
    ASSERT_EQ(8081, srv[1].port);
    cio_dns_free(srv);
    cio_dns_mx *mx;
    ASSERT_OK(cio_resolve_mx("mail.test", &mx, &n));
    ASSERT_EQ(2, n);
    ASSERT_STR_EQ("mx1.test", mx[0].host);
    ASSERT_EQ(10, mx[0].priority);
    ASSERT_STR_EQ("mx2.test", mx[1].host);
    ASSERT_EQ(20, mx[1].priority);
    cio_dns_free(mx);
    cio_dns_txt *txt;
    ASSERT_OK(cio_resolve_txt("txt.test", &txt, &n));
    ASSERT_EQ(2, n);
    ASSERT_STR_EQ("v=spf1 -all", txt[0].text);
    ASSERT_EQ(11, txt[0].len);
    /* The character-strings of one record are joined. */
    ASSERT_STR_EQ("part onepart two", txt[1].text);
    ASSERT_EQ(16, txt[1].len);
    cio_dns_free(txt);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_truncated_answer_retries_over_tcp)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    ASSERT_OK(expect("trunc.test", AF_INET, "10.0.0.9", 1));
    ASSERT_EQ(1, s.tcp_queries);
    ASSERT_EQ(2, dns_server_count(&s, "trunc.test", RR_A));
    dns_server_stop(&s);
    return 0;
}

TEST(dns_silent_server_times_out_under_a_deadline)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    int fds = cio_test_open_fds();
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(200 * CIO_MSEC), 0));
    cio_addrinfo *ai;
    ASSERT_EQ(-ECANCELED, cio_resolve("silent.test", 80, AF_INET, &ai));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TIME(200 * CIO_MSEC);
    /* The abandoned query closed its socket at once. */
    ASSERT_EQ(fds, cio_test_open_fds());
    ASSERT_EQ(1, dns_server_count(&s, "silent.test", RR_A));
    dns_server_stop(&s);
    return 0;
}

/* c-ares' own timeout runs on the real clock. */
TEST_REALTIME(dns_silent_server_resolver_timeout)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    cio_dns_config cfg = {.servers = s.servers,
                          .timeout = 50 * CIO_MSEC,
                          .tries = 2,
                          .hosts_file = "",
                          .no_search = true};
    ASSERT_OK(cio_dns_configure(&cfg));
    int64_t t0 = cio_now();
    cio_addrinfo *ai;
    ASSERT_EQ(-ETIMEDOUT, cio_resolve("silent.test", 80, AF_INET, &ai));
    int64_t took = cio_now() - t0;
    ASSERT_TRUE(took >= 50 * CIO_MSEC && took < 2 * CIO_SEC);
    ASSERT_EQ(2, dns_server_count(&s, "silent.test", RR_A));
    dns_server_stop(&s);
    return 0;
}

typedef struct lookup_job {
    const char *host;
    int rc;
    int family;
} lookup_job;

static int lookup_task(void *arg)
{
    lookup_job *j = arg;
    cio_addrinfo *ai = NULL;
    j->rc = cio_resolve(j->host, 80, j->family, &ai);
    cio_addrinfo_free(ai);
    return j->rc < 0 ? j->rc : 0;
}

TEST(dns_cancel_mid_flight_leaves_nothing)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    int fds = cio_test_open_fds();
    long mem = cio__alloc_live();
    lookup_job j = {"silent.test", 1, AF_INET};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, lookup_task, &j));
    /* Until the server has seen the query. */
    for (int i = 0; i < 100 && s.queries == 0; i++)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_EQ(1, dns_server_count(&s, "silent.test", RR_A));
    ASSERT_TRUE(cio_test_open_fds() > fds); /* the resolver's socket */
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ECANCELED, j.rc);
    ASSERT_EQ(fds, cio_test_open_fds());
    /* The resolver's state stays (channel, socket watch list): only the
     * query's memory must be gone. */
    ASSERT_TRUE(cio__alloc_live() <= mem + 64);
    /* The resolver still works afterwards. */
    ASSERT_OK(expect("www.test", AF_INET, "10.0.0.1", 1));
    dns_server_stop(&s);
    return 0;
}

TEST(dns_cancel_one_of_two_lookups)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    lookup_job silent = {"silent.test", 1, AF_INET},
               www = {"www.test", 1, AF_INET};
    cio_task *t1, *t2;
    ASSERT_OK(cio_spawn(&t1, lookup_task, &silent));
    ASSERT_OK(cio_task_cancel(t1)); /* cancelled before it starts */
    ASSERT_OK(cio_spawn(&t2, lookup_task, &www));
    ASSERT_EQ(-ECANCELED, cio_task_join(t1));
    ASSERT_OK(cio_task_join(t2));
    ASSERT_EQ(0, www.rc);
    cio_task_free(t1);
    cio_task_free(t2);
    /* Now cancel one while the other is in flight: the other completes. */
    silent.rc = www.rc = 1;
    ASSERT_OK(cio_dns_configure(NULL));
    ASSERT_OK(dns_server_use(&s, NULL));
    ASSERT_OK(cio_spawn(&t1, lookup_task, &silent));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(cio_spawn(&t2, lookup_task, &www));
    ASSERT_OK(cio_task_cancel(t1));
    ASSERT_EQ(-ECANCELED, cio_task_join(t1));
    ASSERT_OK(cio_task_join(t2));
    ASSERT_EQ(0, www.rc);
    cio_task_free(t1);
    cio_task_free(t2);
    dns_server_stop(&s);
    return 0;
}

/* A loop on an executor thread whose main returns while a detached
 * lookup (both families: two queries inside c-ares) still waits: the
 * loop's close cancels it and frees the resolver. */
static int left_behind_main(void *arg)
{
    cio_dns_config cfg = {.servers = arg, .hosts_file = "", .no_search = true};
    int rc = cio_dns_configure(&cfg);
    if (rc < 0)
        return rc;
    static lookup_job left = {"silent.test", 1, AF_UNSPEC};
    rc = cio_spawn(NULL, lookup_task, &left);
    return rc < 0 ? rc : cio_wait_all_blocked();
}

static int other_loop(void *arg)
{
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 0;
    return cio_run_config(&cfg, left_behind_main, arg);
}

TEST(dns_cancel_both_families_and_close_a_loop_mid_lookup)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    int fds = cio_test_open_fds();
    lookup_job j = {"silent.test", 1, AF_UNSPEC};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, lookup_task, &j));
    for (int i = 0; i < 100 && s.queries < 2; i++)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_EQ(2, s.queries);
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(fds, cio_test_open_fds());
    ASSERT_OK(cio_to_thread(other_loop, s.servers));
    for (int i = 0; i < 100 && s.queries < 4; i++)
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_EQ(4, s.queries);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_configure_refused_while_lookups_run)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    lookup_job j = {"silent.test", 1, AF_INET};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, lookup_task, &j));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(-EBUSY, cio_dns_configure(NULL));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(dns_server_use(&s, NULL));
    dns_server_stop(&s);
    return 0;
}

TEST(dns_many_concurrent_lookups)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    cio_dns_config cfg = {.servers = s.servers,
                          .hosts_file = "",
                          .no_search = true,
                          .no_cache = true};
    ASSERT_OK(cio_dns_configure(&cfg));
    enum { N = 40 };
    lookup_job jobs[N];
    cio_call calls[N];
    static const char *const names[] = {"www.test", "two.test", "alias.test",
                                        "nope.test"};
    for (int i = 0; i < N; i++) {
        jobs[i] = (lookup_job){names[i % 4], 1, AF_INET};
        calls[i] = (cio_call){lookup_task, &jobs[i], 0};
    }
    ASSERT_OK(cio_gather(calls, N, CIO_GATHER_RETURN_ERRORS));
    for (int i = 0; i < N; i++)
        ASSERT_EQ(i % 4 == 3 ? CIO_ENOTFOUND : 0, jobs[i].rc);
    ASSERT_EQ(N, s.queries);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_cache_hit_then_ttl_expiry)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1));
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1));
    ASSERT_OK(expect("SHORT.test.", AF_INET, "10.0.0.5", 1));
    ASSERT_EQ(1, dns_server_count(&s, "short.test", RR_A));
    /* The TTL left counts down. */
    ASSERT_OK(cio_sleep(2 * CIO_SEC));
    cio_addrinfo *ai;
    ASSERT_OK(cio_resolve("short.test", 80, AF_INET, &ai));
    ASSERT_EQ(3, ai->ttl);
    cio_addrinfo_free(ai);
    ASSERT_EQ(1, dns_server_count(&s, "short.test", RR_A));
    /* Another family is another entry. */
    ASSERT_EQ(CIO_ENODATA, cio_resolve("short.test", 80, AF_INET6, &ai));
    /* Past the TTL the server is asked again. */
    ASSERT_OK(cio_sleep(3 * CIO_SEC));
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1));
    ASSERT_EQ(2, dns_server_count(&s, "short.test", RR_A));
    /* Clearing the cache, or turning it off, asks again too. */
    cio_dns_cache_clear();
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1));
    ASSERT_EQ(3, dns_server_count(&s, "short.test", RR_A));
    cio_dns_config cfg = {.servers = s.servers,
                          .hosts_file = "",
                          .no_search = true,
                          .no_cache = true};
    ASSERT_OK(cio_dns_configure(&cfg));
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1));
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1));
    ASSERT_EQ(5, dns_server_count(&s, "short.test", RR_A));
    dns_server_stop(&s);
    return 0;
}

TEST(dns_cache_is_bounded_lru)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    cio_dns_config cfg = {.servers = s.servers,
                          .hosts_file = "",
                          .no_search = true,
                          .cache_size = 2};
    ASSERT_OK(cio_dns_configure(&cfg));
    ASSERT_OK(expect("www.test", AF_INET, "10.0.0.1", 1));
    ASSERT_OK(expect("two.test", AF_INET, "10.0.0.2", 2));
    ASSERT_OK(expect("www.test", AF_INET, "10.0.0.1", 1));   /* hit */
    ASSERT_OK(expect("short.test", AF_INET, "10.0.0.5", 1)); /* evicts two */
    ASSERT_OK(expect("www.test", AF_INET, "10.0.0.1", 1));   /* hit */
    ASSERT_OK(expect("two.test", AF_INET, "10.0.0.2", 2));   /* miss */
    ASSERT_EQ(1, dns_server_count(&s, "www.test", RR_A));
    ASSERT_EQ(2, dns_server_count(&s, "two.test", RR_A));
    dns_server_stop(&s);
    return 0;
}

static int write_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

TEST(dns_hosts_file_answers_without_network)
{
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    char path[] = "/tmp/cio-hosts-XXXXXX";
    ASSERT_OK(write_file(path, "# comment\n"
                               "10.1.2.3\tmyhost.test  alias.test # x\n"
                               "::2 myhost.test\n"
                               "bogus line here\n"
                               "10.9.9.9 localhost\n"));
    ASSERT_OK(dns_server_use(&s, path));
    ASSERT_OK(expect("myhost.test", AF_UNSPEC, "10.1.2.3", 2));
    ASSERT_OK(expect("MyHost.Test.", AF_INET6, "::2", 1));
    ASSERT_OK(expect("alias.test", AF_INET, "10.1.2.3", 1));
    /* The hosts file comes before "localhost" is made up. */
    ASSERT_OK(expect("localhost", AF_INET, "10.9.9.9", 1));
    ASSERT_OK(expect("localhost", AF_INET6, "::1", 1));
    ASSERT_EQ(0, s.queries);
    /* Edits are seen. */
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(20, write(fd, "10.4.4.4 myhost.test", 20));
    close(fd);
    struct timespec ts[2] = {{0, UTIME_NOW}, {1, 0}}; /* a new mtime */
    ASSERT_OK(utimensat(AT_FDCWD, path, ts, 0));
    /* The file is looked at once a second at most. */
    ASSERT_OK(expect("myhost.test", AF_UNSPEC, "10.1.2.3", 2));
    ASSERT_OK(cio_sleep(CIO_SEC));
    ASSERT_OK(expect("myhost.test", AF_UNSPEC, "10.4.4.4", 1));
    /* Gone from the file: asked from DNS (alias.test is a CNAME there). */
    if (HAVE_CARES()) {
        ASSERT_OK(expect("alias.test", AF_INET, "10.0.0.1", 1));
        ASSERT_EQ(1, s.queries);
    }
    unlink(path);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_numeric_and_localhost_never_ask)
{
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    ASSERT_OK(dns_server_use(&s, NULL));
    ASSERT_OK(expect("127.0.0.1", AF_UNSPEC, "127.0.0.1", 1));
    ASSERT_OK(expect("::1", AF_INET6, "::1", 1));
    ASSERT_OK(expect("localhost", AF_UNSPEC, "::1", 2));
    ASSERT_OK(expect("LocalHost.", AF_INET, "127.0.0.1", 1));
    ASSERT_OK(expect("db.localhost", AF_INET, "127.0.0.1", 1));
    cio_addrinfo *ai;
    ASSERT_EQ(CIO_ENODATA, cio_resolve("::1", 80, AF_INET, &ai));
    ASSERT_EQ(CIO_ENODATA, cio_resolve("10.0.0.1", 80, AF_INET6, &ai));
    ASSERT_OK(cio_resolve("10.0.0.1", 80, AF_INET, &ai));
    ASSERT_EQ(0, ai->ttl);
    cio_addrinfo_free(ai);
    ASSERT_EQ(0, s.queries);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_cancelled_caller_gets_ecanceled_even_on_a_hit)
{
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    cio_addrinfo *ai;
    ASSERT_EQ(-ECANCELED, cio_resolve("127.0.0.1", 80, AF_INET, &ai));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    return 0;
}

/* Out of memory at every allocation of a lookup in turn: an error or a
 * result, never a crash or a leak (the runner counts allocations). */
TEST(dns_out_of_memory_at_each_step)
{
    NEED_CARES();
    dns_server s;
    ASSERT_OK(dns_server_start(&s, zone, NZONE));
    int ok = 0;
    for (long nth = 1; nth < 200 && ok < 3; nth++) {
        ASSERT_OK(cio_dns_configure(NULL));
        ASSERT_OK(dns_server_use(&s, NULL));
        cio_addrinfo *ai = NULL;
        cio__alloc_fail_at(nth);
        int rc = cio_resolve("alias.test", 80, AF_UNSPEC, &ai);
        cio__alloc_fail_at(0);
        if (rc == 0) {
            ok++;
            cio_addrinfo_free(ai);
        } else if (rc != -ENOMEM && rc != CIO_EDNS && rc != CIO_EBADRESP &&
                   rc != -ETIMEDOUT) {
            TEST_FAIL_("allocation %ld: %s", nth, cio_err_name(rc));
        }
    }
    ASSERT_TRUE(ok > 0);
    dns_server_stop(&s);
    return 0;
}

TEST(dns_records_need_c_ares)
{
    if (HAVE_CARES())
        return 0;
    cio_dns_srv *srv;
    cio_dns_mx *mx;
    cio_dns_txt *txt;
    size_t n;
    ASSERT_EQ(-ENOTSUP, cio_resolve_srv("_x._tcp.test", &srv, &n));
    ASSERT_EQ(-ENOTSUP, cio_resolve_mx("test", &mx, &n));
    ASSERT_EQ(-ENOTSUP, cio_resolve_txt("test", &txt, &n));
    return 0;
}
