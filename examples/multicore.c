/* examples/multicore.c: an echo server on every core (a loop per CPU,
 * SO_REUSEPORT), clients on loop 0, then each loop says, from a task run
 * on it, how many connections it served. */
#include <stdatomic.h>
#include <stdio.h>

#include <cio.h>
#include <cio/xloop.h>

#define CLIENTS 16
static _Thread_local int served; /* per loop: each loop is a thread */
static atomic_int listening;
static int port;

static int echo(cio_stream *s, void *arg)
{
    (void)arg;
    served++;
    char buf[256];
    ssize_t n;
    while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
        int rc = cio_stream_write(s, buf, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

static int client(void *arg)
{
    (void)arg;
    char buf[4];
    cio_stream *s;
    int rc = cio_open_connection(&s, "127.0.0.1", port, NULL);
    if (rc < 0)
        return rc;
    if ((rc = cio_stream_write(s, "hi\n", 3)) == 0)
        rc = (int)cio_stream_readexactly(s, buf, 3, NULL);
    int crc = cio_stream_close(s);
    return rc < 0 ? rc : crc;
}

static int how_many_served(void *arg)
{
    (void)arg;
    return served;
}

static int run_clients(void)
{
    while (atomic_load(&listening) < cio_loop_count()) /* all listen */
        if (cio_sleep(CIO_MSEC) < 0)
            return -ECANCELED;
    cio_call calls[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        calls[i] = (cio_call){.fn = client};
    int rc = cio_gather(calls, CLIENTS, 0);
    for (int i = 0; rc == 0 && i < cio_loop_count(); i++) {
        cio_xtask *h;
        int n;
        rc = cio_xloop_spawn(&h, i, how_many_served, NULL);
        if (rc == 0)
            rc = cio_xloop_join(h, &n);
        if (rc == 0)
            printf("loop %d served %d connections\n", i, n);
    }
    return rc;
}

static int serve(void *arg)
{
    cio_addr a;
    cio_server *srv; /* port 0: the first loop picks, the others follow */
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc < 0 || (rc = cio_multi_server_start(&srv, &a, echo, NULL, NULL)))
        return rc;
    atomic_fetch_add(&listening, 1);
    if (cio_loop_index() == 0) {
        port = cio_addr_port(cio_server_addr(srv));
        rc = run_clients();
        cio_multi_cancel(); /* done: stop every loop */
    } else {
        rc = cio_server_wait(srv); /* until cio_multi_cancel */
    }
    cio_server_close(srv, CIO_SEC);
    return rc == -ECANCELED ? 0 : rc;
}

int main(void)
{
    int rc = cio_run_multi(NULL, serve, NULL); /* one loop per CPU */
    if (rc < 0) {
        fprintf(stderr, "multicore: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
