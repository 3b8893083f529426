/* bench_zc: a bulk transfer of 1 MiB messages over loopback TCP inside
 * one io_uring loop, to decide the zero-copy send threshold and to see
 * what the multishot receive does to bulk reads. N messages (argv[1],
 * default 1000) go from a sender task to a receiver task that reads each
 * with cio_stream_readexactly. The sender uses cio_send_all on the fd
 * ("send") or cio_stream_write + drain ("stream"). Modes:
 *   copy         plain SEND (the default)
 *   zc           SEND_ZC for a stream's sends >= 16 KiB
 *                (CIO_URING_SEND_ZC=16384; cio_send never goes zero-copy,
 *                so "send" rows in this mode show the plain path again)
 *   nomulti      plain SEND, receives without multishot
 *                (CIO_URING_OPS=norecvmulti)
 * Prints `zc.<sender>/<mode> <MiB/s> MiB/s` and the process CPU time per
 * GiB moved (`zc.<sender>.cpu/<mode> <ms> ms/GiB`). */
#include <sys/resource.h>
#include <sys/socket.h>

#include "bench.h"

#define MSG ((size_t)1 << 20)

static long n;

typedef struct xfer {
    cio_stream *rd;
    cio_stream *wr;
    int wfd;
    bool stream;
    char *out, *in;
} xfer;

static int sender(void *arg)
{
    xfer *x = arg;
    for (long i = 0; i < n; i++) {
        ssize_t rc;
        if (x->stream) {
            rc = cio_stream_write(x->wr, x->out, MSG);
            if (rc == 0)
                rc = cio_stream_drain(x->wr);
        } else {
            rc = cio_send_all(x->wfd, x->out, MSG, NULL);
        }
        if (rc < 0)
            return bench_fail("send", (int)rc);
    }
    return 0;
}

static int receiver(void *arg)
{
    xfer *x = arg;
    for (long i = 0; i < n; i++) {
        ssize_t rc = cio_stream_readexactly(x->rd, x->in, MSG, NULL);
        if (rc < 0)
            return bench_fail("readexactly", (int)rc);
        if (x->in[0] != (char)0x5a || x->in[MSG - 1] != (char)0x5a)
            return bench_fail("data", -EPROTO);
    }
    return 0;
}

static int pair(int *a, int *b)
{
    cio_addr ad;
    int lfd;
    int rc = cio_addr_ip(&ad, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_listen(&lfd, &ad, 1, 0);
    if (rc < 0)
        return rc;
    ad.len = sizeof ad.u;
    getsockname(lfd, &ad.u.sa, &ad.len);
    rc = cio_connect_addr(a, &ad);
    if (rc == 0)
        rc = cio_accept(lfd, b, NULL);
    cio_close(lfd);
    return rc;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

typedef struct run {
    bool stream;
    double mibs, cpu_per_gib;
} run;

static int transfer(void *arg)
{
    run *r = arg;
    xfer x = {.stream = r->stream};
    x.out = malloc(MSG);
    x.in = malloc(MSG);
    if (x.out == NULL || x.in == NULL)
        return -ENOMEM;
    memset(x.out, 0x5a, MSG);
    int a, b;
    int rc = pair(&a, &b);
    if (rc < 0)
        return bench_fail("pair", rc);
    rc = cio_stream_open(&x.rd, b, NULL);
    if (rc == 0 && x.stream)
        rc = cio_stream_open(&x.wr, a, NULL);
    x.wfd = a;
    if (rc < 0)
        return bench_fail("stream", rc);
    double c0 = cpu_ms();
    int64_t t0 = bench_now();
    cio_call calls[2] = {{.fn = sender, .arg = &x},
                         {.fn = receiver, .arg = &x}};
    rc = cio_gather(calls, 2, 0);
    int64_t dt = bench_now() - t0;
    double c1 = cpu_ms();
    double mib = (double)n * (double)MSG / (1 << 20);
    r->mibs = mib / ((double)dt / 1e9);
    r->cpu_per_gib = (c1 - c0) / (mib / 1024);
    if (x.stream)
        cio_stream_close(x.wr);
    else
        cio_close(a);
    cio_stream_close(x.rd);
    free(x.out);
    free(x.in);
    return rc;
}

static int measure(bool stream, const char *mode, const char *zc,
                   const char *ops)
{
    zc ? setenv("CIO_URING_SEND_ZC", zc, 1) : unsetenv("CIO_URING_SEND_ZC");
    ops ? setenv("CIO_URING_OPS", ops, 1) : unsetenv("CIO_URING_OPS");
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.backend = CIO_BACKEND_URING;
    cfg.handle_signals = 0;
    run r = {.stream = stream};
    int rc = cio_run_config(&cfg, transfer, &r);
    if (rc < 0)
        return rc;
    const char *who = stream ? "stream" : "send";
    printf("zc.%s/%s %.0f MiB/s\n", who, mode, r.mibs);
    printf("zc.%s.cpu/%s %.0f ms/GiB\n", who, mode, r.cpu_per_gib);
    return 0;
}

int main(int argc, char **argv)
{
    n = bench_size(argc, argv, 1000);
    int rc = 0;
    for (int s = 0; s < 2 && rc == 0; s++) {
        bool stream = s == 1;
        rc = measure(stream, "copy", NULL, NULL);
        if (rc == 0)
            rc = measure(stream, "zc", "16384", NULL);
        if (rc == 0)
            rc = measure(stream, "nomulti", NULL, "norecvmulti");
    }
    return rc == 0 ? 0 : 1;
}
