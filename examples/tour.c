/* examples/tour.c: the cio model in about two seconds of real time.
 * 1. Pipeline: a producer feeds two workers through a queue holding two
 *    jobs, so it waits when they fall behind. When done it shuts the
 *    queue down; the workers drain it and stop. No sentinels.
 * 2. Fan-out: eight fetches, three at a time (a semaphore), each with a
 *    300 ms deadline (a scope); cio_gather keeps every result.
 * 3. Cancellation: a slow job gets 500 ms (cio_wait_for), then it is
 *    cancelled, saves its progress in a shielded scope, and has exited
 *    when wait_for returns.
 * 4. Network: a chat server and three clients on loopback; a SIGTERM
 *    closes the server gracefully: no new connections, 300 ms for the open
 *    ones to finish, then they are cancelled. */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <cio.h>

static int64_t t0; /* when the demo started */

/* Print a line stamped with the seconds since the start. */
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%6.3f] ", (double)(cio_now() - t0) / CIO_SEC);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* 1. Pipeline. */

static cio_queue *jobs;

static int producer(void *arg)
{
    (void)arg;
    for (uintptr_t job = 1; job <= 8; job++) {
        int rc = cio_queue_put(jobs, (void *)job); /* waits while full */
        if (rc < 0)
            return rc;
        say("producer: queued job %u", (unsigned)job);
    }
    say("producer: no more jobs, shutting the queue down");
    return cio_queue_shutdown(jobs, false);
}

static int worker(void *arg)
{
    for (;;) {
        void *job;
        int rc = cio_queue_get(jobs, &job);
        if (rc == -ESHUTDOWN) {
            say("%s: queue shut down and empty, stopping", (char *)arg);
            return 0;
        }
        if (rc == 0)
            rc = cio_sleep(150 * CIO_MSEC); /* do the job */
        if (rc < 0)
            return rc;
        say("%s: finished job %u", (char *)arg, (unsigned)(uintptr_t)job);
    }
}

static int pipeline(void)
{
    int rc = cio_queue_new(&jobs, CIO_QUEUE_FIFO, 2, NULL);
    if (rc < 0)
        return rc;
    cio_call calls[] = {{producer, NULL, 0}, {worker, "worker-1", 0},
                        {worker, "worker-2", 0}};
    rc = cio_gather(calls, 3, 0);
    int frc = cio_queue_free(jobs);
    return rc < 0 ? rc : frc;
}

/* 2. Fan-out with a limit and deadlines. */

static const int fetch_ms[] = {120, 450, 80, 200, 600, 150, 90, 350};
static cio_sem slots = CIO_SEM_INIT(3);

static int fetch(void *arg)
{
    int i = (int)(intptr_t)arg;
    int rc = cio_sem_acquire(&slots);
    if (rc < 0)
        return rc;
    cio_scope sc; /* async with asyncio.timeout(0.3): */
    rc = cio_scope_enter(&sc, cio_deadline_after(300 * CIO_MSEC), 0);
    if (rc == 0) {
        rc = cio_sleep(fetch_ms[i] * CIO_MSEC); /* the request */
        int xrc = cio_scope_exit(&sc);
        if (rc == -ECANCELED && xrc < 0)
            rc = xrc; /* -ETIMEDOUT: our deadline, not a cancel */
    }
    int rrc = cio_sem_release(&slots);
    say("fetch %d (%3d ms): %s", i, fetch_ms[i],
        rc == 0 ? "ok" : cio_err_name(rc));
    return rc < 0 ? rc : rrc;
}

static int fan_out(void)
{
    cio_call calls[8];
    for (int i = 0; i < 8; i++)
        calls[i] = (cio_call){fetch, (void *)(intptr_t)i, 0};
    int rc = cio_gather(calls, 8, CIO_GATHER_RETURN_ERRORS);
    for (int i = 0; i < 8 && rc == 0; i++)
        if (calls[i].result < 0 && calls[i].result != -ETIMEDOUT)
            rc = calls[i].result; /* a real failure, not a timeout */
    say("gather: all eight fetches are back");
    return rc;
}

/* 3. Cancelling a slow task. */

static int slow_job(void *arg)
{
    (void)arg;
    say("slow job: started, needs 5 s");
    int rc = cio_sleep(5 * CIO_SEC);
    if (rc == 0)
        return 0;
    say("slow job: %s, saving progress", cio_err_name(rc));
    cio_scope shield; /* the task stays cancelled: shield the cleanup */
    int src = cio_scope_enter(&shield, cio_deadline_after(CIO_SEC),
                              CIO_SCOPE_SHIELD);
    if (src == 0) {
        src = cio_sleep(100 * CIO_MSEC);
        int xrc = cio_scope_exit(&shield);
        src = src < 0 ? src : xrc;
    }
    say("slow job: progress saved: %s", cio_err_name(src));
    return rc;
}

/* 4. Network. */

/* The chat server: echo each line back to its sender, tagged. */
static int chat(cio_stream *s, void *arg)
{
    (void)arg;
    char line[128], reply[160];
    ssize_t n;
    while ((n = cio_stream_readline(s, line, sizeof line - 1)) > 0) {
        line[n] = '\0';
        int len = snprintf(reply, sizeof reply, "server heard: %s", line);
        int rc = cio_stream_write(s, reply, (size_t)len);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
    say("server: connection ended (%s)", n == 0 ? "client left" :
        cio_err_name((int)n));
    return (int)n;
}

static int port;

/* A client says hello, then stays connected until the server goes. */
static int client(void *arg)
{
    int id = (int)(intptr_t)arg;
    cio_stream *s;
    int rc = cio_open_connection(&s, "127.0.0.1", port, NULL);
    if (rc < 0)
        return rc;
    char buf[160];
    int len = snprintf(buf, sizeof buf, "hello from client %d\n", id);
    rc = cio_stream_write(s, buf, (size_t)len);
    ssize_t n = rc < 0 ? rc : cio_stream_readline(s, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n - 1] = '\0';
        say("client %d: got \"%s\"", id, buf);
        n = cio_stream_read(s, buf, sizeof buf); /* until closed */
        say("client %d: server closed the connection", id);
    }
    cio_stream_close(s);
    return n < 0 ? (int)n : 0;
}

/* Plays the operator: after 300 ms, `kill -TERM` this process. */
static int operator(void *arg)
{
    (void)arg;
    int rc = cio_sleep(300 * CIO_MSEC);
    if (rc < 0)
        return rc;
    say("operator: kill -TERM %d", (int)getpid());
    return raise(SIGTERM) == 0 ? 0 : -EIO;
}

static int network(void)
{
    cio_addr a;
    cio_server *srv;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_server_start(&srv, &a, chat, NULL, NULL);
    if (rc < 0)
        return rc;
    port = cio_addr_port(cio_server_addr(srv));
    say("server: listening on port %d", port);
    cio_group *g;
    rc = cio_group_new(&g, 0);
    for (intptr_t i = 1; i <= 3 && rc == 0; i++)
        rc = cio_group_spawn(g, NULL, client, (void *)i);
    if (rc == 0)
        rc = cio_spawn(NULL, operator, NULL);
    if (rc == 0)
        rc = cio_signal_wait(SIGTERM); /* serve until then */
    say("server: SIGTERM: closing with a 300 ms grace period");
    int crc = cio_server_close(srv, 300 * CIO_MSEC);
    int grc = g ? cio_group_join(g) : 0;
    cio_group_free(g);
    say("server: closed; %s", cio_err_name(grc));
    return rc < 0 ? rc : crc < 0 ? crc : grc;
}

static int demo(void *arg)
{
    (void)arg;
    t0 = cio_now();
    printf("1. pipeline: bounded queue, shutdown instead of sentinels\n");
    int rc = pipeline();
    if (rc < 0)
        return rc;
    printf("2. fan-out: 3 at a time, 300 ms deadline each, gather\n");
    rc = fan_out();
    if (rc < 0)
        return rc;
    printf("3. cancellation: wait_for gives a slow job 500 ms\n");
    cio_task *t;
    rc = cio_spawn(&t, slow_job, NULL);
    if (rc < 0)
        return rc;
    rc = cio_wait_for(t, 500 * CIO_MSEC);
    say("main: wait_for: %s; slow job done: %s", cio_err_name(rc),
        cio_task_done(t) ? "yes" : "no");
    cio_task_free(t);
    if (rc != -ETIMEDOUT)
        return rc;
    printf("4. network: chat server, clients, graceful shutdown on SIGTERM\n");
    return network();
}

int main(void)
{
    int rc = cio_run(demo, NULL);
    if (rc < 0) {
        fprintf(stderr, "demo: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
