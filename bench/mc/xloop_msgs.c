/* xloop_msgs.c: messages per second between loops.
 *
 * Loop 1 sends N 8-byte messages into a channel owned by loop 0, which
 * takes them in batches (cio_chan_recv_many); then the same one message at
 * a time; then loops 1 and 2 send N/2 each into one channel of loop 0
 * (fan-in: two producers on one ring, batched receive); then cross-loop
 * task round trips (cio_xloop_spawn + join). Three loops run throughout
 * (the third idles outside the fan-in). Prints `name value unit` lines.
 *
 * Usage: xloop_msgs [N [PHASE]]: N defaults to 2000000; PHASE is batch,
 * single, fanin, spawn or all (the default), so that a syscall counter
 * (perf stat -e syscalls:sys_enter_write) can be read for one phase:
 * eventfd writes per message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cio.h>
#include <cio/xloop.h>

typedef struct bench {
    long n;
    const char *phase;
    cio_chan *ch;
    int senders; /* loops sending in this pass: 1 or 2 */
    double batch_rate, single_rate, fanin_rate, spawn_us;
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int produce(void *arg)
{
    bench *b = arg;
    long k = cio_loop_index() - 1, from = b->n * k / b->senders,
         to = b->n * (k + 1) / b->senders;
    for (long i = from; i < to; i++) {
        uint64_t v = (uint64_t)i;
        int rc = cio_chan_send(b->ch, &v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* Receive n messages from `senders` loops (1, 2); `batch` at a time. */
static int run_pass(bench *b, int senders, size_t batch, double *rate)
{
    int rc = cio_chan_new(&b->ch, sizeof(uint64_t), 1024);
    if (rc < 0)
        return rc;
    b->senders = senders;
    cio_xtask *h[2];
    double t0 = now_s();
    int started = 0;
    for (; rc == 0 && started < senders; started++)
        rc = cio_xloop_spawn(&h[started], 1 + started, produce, b);
    if (rc < 0)
        started--;
    uint64_t buf[256], sum = 0;
    long got = 0;
    while (rc == 0 && got < b->n) {
        ssize_t k = cio_chan_recv_many(b->ch, buf, batch);
        if (k < 0) {
            rc = (int)k;
            break;
        }
        for (ssize_t i = 0; i < k; i++)
            sum += buf[i];
        got += k;
    }
    *rate = (double)got / (now_s() - t0);
    if (rc < 0)
        cio_chan_close(b->ch); /* senders still blocked get -EPIPE */
    int res = 0;
    for (int i = 0; i < started; i++) {
        int r = 0, jrc = cio_xloop_join(h[i], &r);
        if (rc == 0)
            rc = jrc;
        if (res == 0)
            res = r;
    }
    cio_chan_free(b->ch);
    if (rc == 0 && sum != (uint64_t)b->n * (uint64_t)(b->n - 1) / 2)
        rc = -EPROTO;
    return rc < 0 ? rc : res;
}

static bool phase_on(const bench *b, const char *name)
{
    return strcmp(b->phase, "all") == 0 || strcmp(b->phase, name) == 0;
}

static int bench_main(void *arg)
{
    bench *b = arg;
    if (cio_loop_index() != 0) {
        int rc = cio_sleep(3600 * CIO_SEC);
        return rc == -ECANCELED ? 0 : rc;
    }
    int rc = 0;
    if (phase_on(b, "batch"))
        rc = run_pass(b, 1, 256, &b->batch_rate);
    if (rc == 0 && phase_on(b, "single"))
        rc = run_pass(b, 1, 1, &b->single_rate);
    if (rc == 0 && phase_on(b, "fanin"))
        rc = run_pass(b, 2, 256, &b->fanin_rate);
    long trips = phase_on(b, "spawn") ? b->n / 20 : 0;
    double t0 = now_s();
    for (long i = 0; rc == 0 && i < trips; i++) {
        cio_xtask *h;
        int res;
        rc = cio_xloop_spawn(&h, 1, nothing, NULL);
        if (rc == 0)
            rc = cio_xloop_join(h, &res);
    }
    if (trips > 0)
        b->spawn_us = (now_s() - t0) / (double)trips * 1e6;
    cio_multi_cancel();
    return rc;
}

int main(int argc, char **argv)
{
    bench b = {.n = argc > 1 ? atol(argv[1]) : 2000000,
               .phase = argc > 2 ? argv[2] : "all"};
    if (b.n < 20 || (!phase_on(&b, "batch") && !phase_on(&b, "single") &&
                     !phase_on(&b, "fanin") && !phase_on(&b, "spawn"))) {
        fprintf(stderr, "usage: xloop_msgs [N >= 20 [batch|single|fanin|"
                        "spawn|all]]\n");
        return 2;
    }
    cio_multi_config cfg;
    cio_multi_config_init(&cfg);
    cfg.loops = 3;
    int rc = cio_run_multi(&cfg, bench_main, &b);
    if (rc < 0) {
        fprintf(stderr, "xloop_msgs: %s\n", cio_strerror(rc));
        return 1;
    }
    if (phase_on(&b, "batch"))
        printf("xloop.msgs_per_s %.0f msg/s\n", b.batch_rate);
    if (phase_on(&b, "single"))
        printf("xloop.msgs_per_s_single %.0f msg/s\n", b.single_rate);
    if (phase_on(&b, "fanin"))
        printf("xloop.msgs_per_s_fanin %.0f msg/s\n", b.fanin_rate);
    if (phase_on(&b, "spawn"))
        printf("xloop.spawn_join_us %.2f us\n", b.spawn_us);
    return 0;
}
