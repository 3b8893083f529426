/* soak.c: a bounded load test of the stream echo server.
 *
 *     soak [SECONDS] [CONNS]        (make soak: 60 s, 10,000 connections)
 *
 * The server runs in this process; the clients run in a forked child
 * with a cio loop of their own, CONNS connections at once, all on
 * loopback. Most clients send random-sized messages and check the echo
 * byte for byte; one in ten is a slow reader (writes 256 KiB before
 * reading any of it back, so the server's drain has to wait), and one in
 * ten resets its connection (RST through SO_LINGER 0) at a random point.
 *
 * Two rounds: a short warm-up at full concurrency sets the baseline (the
 * server's pools and caches sized for that load), then the soak itself.
 * After each round the clients close everything and the server's RSS and
 * open descriptors and cio's live allocations are measured once it has
 * no connection left (after malloc_trim, so RSS is what is held). The run
 * fails (exit 1) unless descriptors return exactly to the baseline, cio's
 * allocations do too (or grew only by the slabs of stacks a busier moment
 * than the warm-up's mapped), RSS ends within 10% (+1 MiB) of it, and no
 * echo came back corrupted. */
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cio.h>

#include "../bench.h"

#define WARMUP_SECONDS 3
#define MAX_MSG 2048
#define SLOW_BYTES (256 * 1024)

/* ---- server --------------------------------------------------------------- */

typedef struct server_stats {
    uint64_t conns, chunks, bytes;
    uint64_t eof, reset, pipe, other;
} server_stats;

static server_stats sstats;

static void count_error(server_stats *st, int rc)
{
    if (rc == -ECONNRESET)
        st->reset++;
    else if (rc == -EPIPE)
        st->pipe++;
    else
        st->other++;
}

static int echo(cio_stream *s, void *arg)
{
    (void)arg;
    sstats.conns++;
    char buf[4096];
    for (;;) {
        ssize_t n = cio_stream_read(s, buf, sizeof buf);
        if (n == 0) {
            sstats.eof++;
            return 0;
        }
        if (n < 0) {
            count_error(&sstats, (int)n);
            return 0;
        }
        sstats.chunks++;
        sstats.bytes += (uint64_t)n;
        int rc = cio_stream_write(s, buf, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0) {
            count_error(&sstats, rc);
            return 0;
        }
    }
}

static long open_fds(void)
{
    long n = 0;
    for (int fd = 0; fd < 65536; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
}

/* Live allocations made through cio's allocator (the library's own
 * counter, exported for tests and tools like this one). */
long cio__alloc_live(void);

typedef struct sample {
    long rss_kib, fds, allocs;
    long stacks; /* stacks ever mapped: the pool grows in slabs */
} sample;

/* After malloc_trim, RSS is what is live plus the pools' pages. */
static sample measure(void)
{
    malloc_trim(0);
    cio_stats st = {0};
    cio_stats_get(&st);
    return (sample){bench_status_kib("VmRSS"), open_fds(), cio__alloc_live(),
                    (long)st.stacks_mapped};
}

/* ---- clients (in the child) ----------------------------------------------- */

typedef struct client_stats {
    uint64_t exchanges, bytes, resets, slow, connect_errors, errors;
    uint64_t corrupt;
} client_stats;

typedef struct client_args {
    int port;
    int id;
    int64_t until;
    client_stats *st;
} client_args;

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static void reset_close(cio_stream *s)
{
    struct linger lg = {1, 0};
    setsockopt(cio_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cio_stream_close(s);
}

/* One exchange: send `n` bytes, read them back, compare. */
static int exchange(cio_stream *s, uint64_t *rng, size_t n, client_stats *st)
{
    char out[MAX_MSG], in[MAX_MSG];
    for (size_t i = 0; i < n; i++)
        out[i] = (char)rng_next(rng);
    int rc = cio_stream_write(s, out, n);
    if (rc == 0)
        rc = cio_stream_drain(s);
    if (rc < 0)
        return rc;
    ssize_t got = cio_stream_readexactly(s, in, n, NULL);
    if (got < 0)
        return (int)got;
    if (memcmp(in, out, n) != 0)
        st->corrupt++;
    st->exchanges++;
    st->bytes += n;
    return 0;
}

/* A slow reader: write SLOW_BYTES before reading any of it back. */
static int slow_exchange(cio_stream *s, client_stats *st)
{
    static char block[16384];
    for (size_t sent = 0; sent < SLOW_BYTES; sent += sizeof block) {
        int rc = cio_stream_write(s, block, sizeof block);
        if (rc < 0)
            return rc;
    }
    int rc = cio_sleep(200 * CIO_MSEC); /* not reading meanwhile */
    if (rc < 0)
        return rc;
    char buf[16384];
    for (size_t got = 0; got < SLOW_BYTES;) {
        ssize_t n = cio_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            return n == 0 ? CIO_EOF : (int)n;
        got += (size_t)n;
    }
    st->slow++;
    st->bytes += SLOW_BYTES;
    return cio_stream_drain(s);
}

static int client(void *arg)
{
    client_args *a = arg;
    uint64_t rng = (uint64_t)a->id * 7919 + 1;
    int kind = a->id % 10; /* 0: slow reader, 1: resetter, else normal */
    while (cio_now() < a->until) {
        cio_stream *s;
        int rc = cio_open_connection(&s, "127.0.0.1", a->port, NULL);
        if (rc < 0) {
            a->st->connect_errors++;
            if (cio_sleep(10 * CIO_MSEC + (int64_t)(rng_next(&rng) % 50) *
                                              CIO_MSEC) < 0)
                return 0;
            continue;
        }
        int left = 1 + (int)(rng_next(&rng) % 40);
        while (rc == 0 && left-- > 0 && cio_now() < a->until) {
            if (kind == 0 && left % 8 == 0)
                rc = slow_exchange(s, a->st);
            else
                rc = exchange(s, &rng, 1 + rng_next(&rng) % MAX_MSG, a->st);
            if (rc == 0)
                rc = cio_sleep((int64_t)(rng_next(&rng) % 100) * CIO_MSEC);
        }
        if (rc == -ECANCELED) {
            cio_stream_close(s);
            return 0;
        }
        if (rc < 0)
            a->st->errors++;
        if (kind == 1 && rc == 0) {
            a->st->resets++;
            reset_close(s);
        } else {
            cio_stream_close(s);
        }
    }
    return 0;
}

typedef struct round_args {
    int port, conns;
    int64_t seconds;
    client_stats st;
} round_args;

static int client_round(void *arg)
{
    round_args *r = arg;
    client_args *ca = calloc((size_t)r->conns, sizeof *ca);
    if (ca == NULL)
        return -ENOMEM;
    cio_group *g;
    int rc = cio_group_new(&g, CIO_GROUP_COLLECT);
    if (rc < 0) {
        free(ca);
        return rc;
    }
    int64_t until = cio_now() + r->seconds * CIO_SEC;
    cio_spawn_opts o = {.stack_size = 32 * 1024};
    for (int i = 0; i < r->conns && rc == 0; i++) {
        ca[i] = (client_args){r->port, i, until, &r->st};
        rc = cio_group_spawn_ex(g, NULL, client, &ca[i], &o);
    }
    int jrc = cio_group_join(g);
    cio_group_free(g);
    free(ca);
    return rc < 0 ? rc : jrc;
}

/* The child: a warm-up round, a handshake, the soak round. */
static int child_main(int port, int conns, int seconds, int to_parent,
                      int from_parent)
{
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 0;
    round_args warm = {port, conns, WARMUP_SECONDS, {0}};
    if (cio_run_config(&cfg, client_round, &warm) < 0)
        return 2;
    char c = 'w';
    if (write(to_parent, &c, 1) != 1 || read(from_parent, &c, 1) != 1)
        return 2;
    round_args soak = {port, conns, seconds, {0}};
    if (cio_run_config(&cfg, client_round, &soak) < 0)
        return 2;
    client_stats *s = &soak.st;
    printf("clients: %llu exchanges, %llu slow-reader rounds, %llu resets, "
           "%.1f MiB echoed\n",
           (unsigned long long)s->exchanges, (unsigned long long)s->slow,
           (unsigned long long)s->resets, (double)s->bytes / (1 << 20));
    printf("clients: %llu connect errors, %llu exchange errors, "
           "%llu corrupted echoes\n",
           (unsigned long long)s->connect_errors,
           (unsigned long long)s->errors, (unsigned long long)s->corrupt);
    fflush(stdout);
    c = 'd';
    if (write(to_parent, &c, 1) != 1)
        return 2;
    return s->corrupt ? 1 : 0;
}

/* ---- the server's side of the run ---------------------------------------- */

typedef struct run_args {
    int conns, seconds;
    int to_child, from_child, port_pipe;
    sample start, base, end;
    uint64_t base_conns;
} run_args;

/* Wait for one byte from the child, then for the server to drain. */
static int await_round(cio_stream *from_child, cio_server *srv)
{
    char c;
    ssize_t n = cio_stream_readexactly(from_child, &c, 1, NULL);
    if (n < 0)
        return (int)n;
    while (cio_server_conns(srv) > 0)
        if (cio_sleep(10 * CIO_MSEC) < 0)
            return -ECANCELED;
    return 0;
}

static int server_main(void *arg)
{
    run_args *r = arg;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    cio_server_opts so = {.backlog = 4096, .stack_size = 32 * 1024};
    int rc = cio_server_start(&srv, &a, echo, NULL, &so);
    if (rc < 0)
        return rc;
    int port = cio_addr_port(cio_server_addr(srv));
    r->start = measure();
    if (write(r->port_pipe, &port, sizeof port) != sizeof port)
        rc = -errno;
    cio_stream *from_child = NULL;
    if (rc == 0)
        rc = cio_stream_open(&from_child, r->from_child, NULL);
    if (rc == 0)
        rc = await_round(from_child, srv);
    if (rc == 0) {
        r->base = measure();
        r->base_conns = sstats.conns;
        char c = 'g';
        if (write(r->to_child, &c, 1) != 1)
            rc = -errno;
    }
    if (rc == 0)
        rc = await_round(from_child, srv);
    r->end = measure();
    if (from_child)
        cio_stream_close(from_child);
    int crc = cio_server_close(srv, CIO_SEC);
    return rc < 0 ? rc : crc;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 60;
    int conns = argc > 2 ? atoi(argv[2]) : 10000;
    if (seconds <= 0 || conns <= 0) {
        fprintf(stderr, "usage: soak [SECONDS] [CONNS]\n");
        return 2;
    }
    /* Room for every connection on both ends, and their stacks. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)conns + 256) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)conns + 256 ? rl.rlim_max
                                                        : (rlim_t)conns + 256;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    int up[2], down[2], portp[2];
    if (pipe(up) != 0 || pipe(down) != 0 || pipe(portp) != 0) {
        perror("pipe");
        return 2;
    }
    printf("soak: %d connections for %d s (after a %d s warm-up)\n", conns,
           seconds, WARMUP_SECONDS);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        close(portp[1]);
        int port;
        if (read(portp[0], &port, sizeof port) != sizeof port)
            _exit(2);
        _exit(child_main(port, conns, seconds, up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    close(portp[0]);
    run_args r = {conns, seconds, down[1], up[0], portp[1], {0}, {0}, {0}, 0};
    cio_config cfg;
    cio_config_init(&cfg);
    int rc = cio_run_config(&cfg, server_main, &r);
    close(down[1]);
    close(portp[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    server_stats *s = &sstats;
    printf("server: %llu connections, %llu chunks echoed (%.1f MiB); ended "
           "by EOF %llu, reset %llu, broken pipe %llu, other %llu\n",
           (unsigned long long)s->conns, (unsigned long long)s->chunks,
           (double)s->bytes / (1 << 20), (unsigned long long)s->eof,
           (unsigned long long)s->reset, (unsigned long long)s->pipe,
           (unsigned long long)s->other);
    printf("server RSS KiB: start %ld, baseline %ld, end %ld\n", r.start.rss_kib,
           r.base.rss_kib, r.end.rss_kib);
    printf("server fds:     start %ld, baseline %ld, end %ld\n", r.start.fds,
           r.base.fds, r.end.fds);
    printf("server cio allocations: start %ld, baseline %ld, end %ld "
           "(stacks mapped: baseline %ld, end %ld)\n",
           r.start.allocs, r.base.allocs, r.end.allocs, r.base.stacks,
           r.end.stacks);
    /* A busier moment than the warm-up's maps another slab of stacks
     * (one allocation per slab, many stacks each): growth no larger than
     * the stacks newly mapped is the pool, anything else a leak. */
    long grown = r.end.allocs - r.base.allocs;
    bool allocs_ok = grown == 0 ||
                     (grown > 0 && grown <= r.end.stacks - r.base.stacks);
    bool ok = rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
              r.end.fds == r.base.fds && allocs_ok &&
              r.end.rss_kib <= r.base.rss_kib + r.base.rss_kib / 10 + 1024;
    if (rc != 0)
        printf("soak: server loop ended with %s\n", cio_err_name(rc));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("soak: clients failed (status %d)\n", status);
    printf("soak: %s\n", ok ? "PASS (fds and RSS back to baseline)" : "FAIL");
    return ok ? 0 : 1;
}
