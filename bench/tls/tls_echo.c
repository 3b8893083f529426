/* tls_echo: what TLS costs a cio stream. A cio echo server runs in a
 * child process (over TLS or plain TCP), and a cio client in this process
 * drives three workloads against it:
 *   rt    N connections x M round trips of 64 B (all connections at once)
 *   bulk  one connection echoing BULK MiB both ways (writer and reader
 *         tasks at once, 64 KiB writes with drain)
 *   hs    K connections opened and closed one after another (a full TLS
 *         1.3 handshake each, no resumption; plain: TCP connects)
 * It prints `name value unit` lines; the server's CPU time (utime+stime
 * from /proc) is given per round trip.
 *
 * Usage: tls_echo tls|plain [N M BULK_MIB K]   (defaults 50 2000 64 300) */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cio.h>
#include <cio/tls.h>

#include "../../tests/tls_util.h"

typedef struct bench {
    bool tls;
    int n, m, bulk_mib, k;
    int port;
    pid_t server;
    tls_files files;
    cio_tls_ctx *cctx;
    cio_stream **conns;
} bench;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec;
}

/* The server child's CPU time in µs. */
static double server_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                            "%*u %lu %lu",
                            &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- the server (child process) ------------------------------------------ */

static int serve(cio_stream *s, void *arg)
{
    cio_tls_ctx *ctx = arg;
    cio_stream *t = s;
    int rc = ctx ? cio_tls_accept(&t, s, ctx, NULL) : 0;
    static char buf[64 * 1024];
    while (rc >= 0) {
        ssize_t n = cio_stream_read(t, buf, sizeof buf);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        rc = cio_stream_write(t, buf, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(t);
    }
    if (t != s)
        cio_stream_close(t);
    return rc;
}

static int server_main(void *arg)
{
    bench *b = arg;
    cio_tls_ctx *ctx = NULL;
    if (b->tls) {
        cio_tls_config c = {.cert_file = b->files.good_cert,
                            .key_file = b->files.good_key};
        int rc = cio_tls_server_ctx_new(&ctx, &c);
        if (rc < 0)
            return rc;
    }
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", b->port);
    cio_server *srv;
    int rc = cio_server_start(&srv, &a, serve, ctx, NULL);
    if (rc == 0)
        rc = cio_server_wait(srv); /* until SIGTERM cancels us */
    cio_tls_ctx_free(ctx);
    return rc == -ECANCELED ? 0 : rc;
}

/* ---- the client -----------------------------------------------------------
 */

static int dial(bench *b, cio_stream **out)
{
    if (b->tls)
        return cio_tls_connect(out, b->cctx, "127.0.0.1", b->port, "localhost",
                               NULL);
    return cio_open_connection(out, "127.0.0.1", b->port, NULL);
}

/* Round trips per connection (the tasks share it). */
static int bench_m;

static int roundtrips(void *arg)
{
    cio_stream *s = arg;
    char out[64], in[64];
    memset(out, 'x', sizeof out);
    for (int i = 0; i < bench_m; i++) {
        int rc = cio_stream_write(s, out, sizeof out);
        if (rc < 0)
            return rc;
        ssize_t n = cio_stream_readexactly(s, in, sizeof in, NULL);
        if (n < 0)
            return (int)n;
    }
    return 0;
}

static int run_rt(bench *b)
{
    b->conns = calloc((size_t)b->n, sizeof *b->conns);
    int rc = b->conns ? 0 : -ENOMEM;
    for (int i = 0; i < b->n && rc == 0; i++)
        rc = dial(b, &b->conns[i]);
    if (rc < 0)
        return rc;
    bench_m = b->m;
    double cpu0 = server_cpu_us(b->server);
    int64_t t0 = now_ns();
    cio_group *g;
    rc = cio_group_new(&g, 0);
    for (int i = 0; i < b->n && rc == 0; i++)
        rc = cio_group_spawn(g, NULL, roundtrips, b->conns[i]);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    double secs = (double)(now_ns() - t0) / 1e9;
    double cpu = server_cpu_us(b->server) - cpu0;
    for (int i = 0; i < b->n; i++)
        cio_stream_close(b->conns[i]);
    free(b->conns);
    if (rc < 0 || jrc < 0)
        return rc < 0 ? rc : jrc;
    double reqs = (double)b->n * b->m;
    printf("rt.req_per_s %.0f req/s\n", reqs / secs);
    printf("rt.server_cpu_us %.2f us/req\n", cpu / reqs);
    return 0;
}

typedef struct bulk_io {
    cio_stream *s;
    size_t total;
} bulk_io;

static int bulk_writer(void *arg)
{
    bulk_io *io = arg;
    static char buf[64 * 1024];
    memset(buf, 'b', sizeof buf);
    for (size_t sent = 0; sent < io->total; sent += sizeof buf) {
        int rc = cio_stream_write(io->s, buf, sizeof buf);
        if (rc == 0)
            rc = cio_stream_drain(io->s);
        if (rc < 0)
            return rc;
    }
    return cio_stream_flush(io->s);
}

static int run_bulk(bench *b)
{
    bulk_io io = {.total = (size_t)b->bulk_mib << 20};
    int rc = dial(b, &io.s);
    if (rc < 0)
        return rc;
    int64_t t0 = now_ns();
    cio_task *w;
    rc = cio_spawn(&w, bulk_writer, &io);
    static char buf[64 * 1024];
    size_t got = 0;
    while (rc == 0 && got < io.total) {
        ssize_t n = cio_stream_read(io.s, buf, sizeof buf);
        if (n <= 0)
            rc = n < 0 ? (int)n : -EPIPE;
        else
            got += (size_t)n;
    }
    int wrc = cio_task_join(w);
    cio_task_free(w);
    double secs = (double)(now_ns() - t0) / 1e9;
    cio_stream_close(io.s);
    if (rc < 0 || wrc < 0)
        return rc < 0 ? rc : wrc;
    printf("bulk.mib_per_s %.1f MiB/s\n", (double)b->bulk_mib / secs);
    return 0;
}

static int run_hs(bench *b)
{
    int64_t t0 = now_ns();
    for (int i = 0; i < b->k; i++) {
        cio_stream *s;
        int rc = dial(b, &s);
        if (rc < 0)
            return rc;
        cio_stream_close(s);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("hs.conn_per_s %.0f conn/s\n", b->k / secs);
    return 0;
}

static int client_main(void *arg)
{
    bench *b = arg;
    if (b->tls) {
        cio_tls_config c = {.ca_file = b->files.ca, .no_session_cache = true};
        int rc = cio_tls_client_ctx_new(&b->cctx, &c);
        if (rc < 0)
            return rc;
    }
    int rc = -ECONNREFUSED;
    for (int i = 0; i < 500 && rc == -ECONNREFUSED; i++) {
        cio_stream *s;
        rc = dial(b, &s); /* wait until the server listens */
        if (rc == 0)
            cio_stream_close(s);
        else
            cio_sleep(10 * CIO_MSEC);
    }
    if (rc == 0)
        rc = run_rt(b);
    if (rc == 0)
        rc = run_bulk(b);
    if (rc == 0)
        rc = run_hs(b);
    cio_tls_ctx_free(b->cctx);
    return rc;
}

int main(int argc, char **argv)
{
    bench b = {.n = 50, .m = 2000, .bulk_mib = 64, .k = 300};
    if (argc < 2 || (strcmp(argv[1], "tls") && strcmp(argv[1], "plain"))) {
        fprintf(stderr, "usage: tls_echo tls|plain [N M BULK_MIB K]\n");
        return 2;
    }
    b.tls = strcmp(argv[1], "tls") == 0;
    int *dims[] = {&b.n, &b.m, &b.bulk_mib, &b.k};
    for (int i = 2; i < argc && i < 6; i++)
        if ((*dims[i - 2] = atoi(argv[i])) <= 0)
            return 2;
    const char *port = getenv("TLS_ECHO_PORT");
    b.port = port ? atoi(port) : 18766;
    if (tls_files_make(&b.files) != 0) {
        fprintf(stderr, "tls_echo: cannot make certificates\n");
        return 1;
    }
    b.server = fork();
    if (b.server == 0)
        _exit(cio_run(server_main, &b) < 0 ? 1 : 0);
    int rc = b.server > 0 ? cio_run(client_main, &b) : -errno;
    if (b.server > 0) {
        kill(b.server, SIGTERM);
        waitpid(b.server, NULL, 0);
    }
    tls_files_remove(&b.files);
    if (rc < 0) {
        fprintf(stderr, "tls_echo: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
