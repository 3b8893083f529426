/* echo_mc.c: the echo server of bench/echo on several loops.
 *
 * reuseport (default): every loop listens on the port with SO_REUSEPORT
 * (cio_multi_server_start) and the kernel spreads the connections.
 * handoff: loop 0 alone accepts and hands the sockets round-robin to the
 * loops (itself included) through channels; each loop serves what it gets.
 *
 * Usage: echo_mc PORT LOOPS [reuseport|handoff] (listens on 127.0.0.1).
 * SIGTERM stops every loop. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cio.h>
#include <cio/xloop.h>

#define READ_SIZE 4096
#define MAX_LOOPS 64

typedef struct args {
    int loops;
    int handoff;
    cio_addr addr;
    /* handoff: each loop's inbox of sockets */
    _Atomic(cio_chan *) inbox[MAX_LOOPS];
    atomic_int ready;
    atomic_int acceptor_done;
} args;

static int echo_stream(cio_stream *s, void *arg)
{
    (void)arg;
    char buf[READ_SIZE];
    for (;;) {
        ssize_t n = cio_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            return (int)n;
        int rc = cio_stream_write(s, buf, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
}

static int serve_reuseport(args *a)
{
    cio_server *srv;
    int rc = cio_multi_server_start(&srv, &a->addr, echo_stream, NULL, NULL);
    if (rc < 0)
        return rc;
    rc = cio_server_wait(srv);
    int crc = cio_server_close(srv, 0);
    if (rc == -ECANCELED)
        return 0; /* SIGTERM: the normal way to stop */
    return rc < 0 ? rc : crc;
}

/* handoff: one task per socket handed to this loop. */
static int serve_fd(void *arg)
{
    cio_stream *s;
    int rc = cio_stream_open(&s, (int)(intptr_t)arg, NULL);
    if (rc < 0)
        return rc;
    rc = echo_stream(s, NULL);
    cio_stream_close(s);
    return rc == -ECANCELED || rc == -ECONNRESET ? 0 : rc;
}

/* Loop 0: accept and deal the sockets out round-robin. */
static int acceptor(void *arg)
{
    args *a = arg;
    while (atomic_load(&a->ready) < a->loops) /* every inbox made */
        if (cio_sleep(CIO_MSEC) < 0)
            return 0;
    int lfd;
    int rc = cio_listen(&lfd, &a->addr, 0, 0);
    if (rc < 0)
        return rc;
    for (unsigned next = 0;; next++) {
        int fd;
        rc = cio_accept(lfd, &fd, NULL);
        if (rc < 0)
            break;
        cio_set_nodelay(fd, true);
        rc = cio_chan_send(atomic_load(&a->inbox[next % (unsigned)a->loops]),
                           &fd);
        if (rc < 0) {
            close(fd);
            break;
        }
    }
    cio_close(lfd);
    return rc == -ECANCELED || rc == -EPIPE ? 0 : rc;
}

static int serve_handoff(args *a)
{
    int me = cio_loop_index();
    cio_chan *in;
    int rc = cio_chan_new(&in, sizeof(int), 1024);
    if (rc < 0)
        return rc;
    atomic_store(&a->inbox[me], in);
    atomic_fetch_add(&a->ready, 1);
    cio_task *acc = NULL;
    if (me == 0 && (rc = cio_spawn(&acc, acceptor, a)) < 0)
        return rc;
    int fd;
    while ((rc = cio_chan_recv(in, &fd)) == 0)
        if (cio_spawn(NULL, serve_fd, (void *)(intptr_t)fd) < 0)
            close(fd);
    /* Stopping (SIGTERM): the acceptor ends first, so that nobody sends
     * to an inbox once it is freed; then drain and free. */
    cio_scope sh;
    cio_scope_enter(&sh, cio_deadline_after(2 * CIO_SEC), CIO_SCOPE_SHIELD);
    if (acc) {
        cio_task_cancel(acc);
        cio_task_join(acc);
        cio_task_free(acc);
        atomic_store(&a->acceptor_done, 1);
    }
    cio_chan_close(in);
    while (!atomic_load(&a->acceptor_done) && cio_sleep(CIO_MSEC) == 0)
        ;
    cio_scope_exit(&sh);
    while (cio_chan_try_recv(in, &fd) == 0)
        close(fd);
    cio_chan_free(in);
    return rc == -ECANCELED ? 0 : rc;
}

static int serve(void *arg)
{
    args *a = arg;
    return a->handoff ? serve_handoff(a) : serve_reuseport(a);
}

int main(int argc, char **argv)
{
    char *end1 = "", *end2 = "";
    long port = argc >= 3 ? strtol(argv[1], &end1, 10) : -1;
    long loops = argc >= 3 ? strtol(argv[2], &end2, 10) : -1;
    int handoff = argc == 4 && strcmp(argv[3], "handoff") == 0;
    if (argc < 3 || argc > 4 || *end1 || *end2 || port < 1 || port > 65535 ||
        loops < 1 || loops > MAX_LOOPS ||
        (argc == 4 && !handoff && strcmp(argv[3], "reuseport") != 0)) {
        fprintf(stderr, "usage: echo_mc PORT LOOPS [reuseport|handoff]\n");
        return 2;
    }
    static args a;
    a.loops = (int)loops;
    a.handoff = handoff;
    if (cio_addr_ip(&a.addr, "127.0.0.1", (int)port) < 0)
        return 2;
    cio_multi_config cfg;
    cio_multi_config_init(&cfg);
    cfg.loops = (unsigned)loops;
    cfg.pin = getenv("ECHO_MC_PIN") != NULL;
    int rc = cio_run_multi(&cfg, serve, &a);
    if (rc < 0 && rc != -ECANCELED) {
        fprintf(stderr, "echo_mc: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
