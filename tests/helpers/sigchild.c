/* A program for the signal tests: runs a main task that waits, and reports
 * on stdout what happened when SIGINT/SIGTERM arrives.
 *   sigchild cancel   main sleeps; returns its result (-ECANCELED -> 3)
 *   sigchild stubborn main sleeps 10 s in a shielded scope
 *   sigchild grace    like stubborn, with a 100 ms shutdown grace
 *   sigchild wait     main waits for SIGINT with cio_signal_wait
 *   sigchild server   an echo server; SIGINT closes it with a 200 ms
 *                     grace and main returns 6 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cio.h>

static const char *mode;

static int echo(cio_stream *s, void *arg)
{
    (void)arg;
    char line[256];
    for (;;) {
        ssize_t n = cio_stream_readline(s, line, sizeof line);
        if (n <= 0)
            return (int)n;
        int rc = cio_stream_write(s, line, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(s);
        if (rc < 0)
            return rc;
    }
}

static int serve(void)
{
    cio_addr a;
    cio_server *srv;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_server_start(&srv, &a, echo, NULL, NULL);
    if (rc < 0)
        return rc;
    printf("port %d\n", cio_addr_port(cio_server_addr(srv)));
    fflush(stdout);
    rc = cio_server_wait(srv); /* until SIGINT cancels main */
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_server_close(srv, 200 * CIO_MSEC);
    cio_scope_exit(&sh);
    printf("closed after %s\n", cio_err_name(rc));
    return rc == -ECANCELED ? 6 : rc;
}

static int child_main(void *arg)
{
    (void)arg;
    if (strcmp(mode, "server") == 0)
        return serve();
    printf("ready\n");
    fflush(stdout);
    int rc;
    if (strcmp(mode, "wait") == 0) {
        rc = cio_signal_wait(SIGINT);
        printf("signal %d\n", rc);
        return rc == 0 ? 4 : rc;
    }
    if (strcmp(mode, "cancel") == 0) {
        rc = cio_sleep(60 * CIO_SEC);
        printf("sleep %s\n", cio_err_name(rc));
        return rc == -ECANCELED ? 3 : rc;
    }
    cio_scope sc;
    cio_scope_enter(&sc, CIO_NEVER, CIO_SCOPE_SHIELD);
    rc = cio_sleep(10 * CIO_SEC);
    cio_scope_exit(&sc);
    printf("shielded sleep %s\n", cio_err_name(rc));
    return rc == -ECANCELED ? 5 : rc;
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "cancel";
    cio_config cfg;
    cio_config_init(&cfg);
    cfg.handle_signals = 1;
    if (strcmp(mode, "grace") == 0)
        cfg.shutdown_grace = 100 * CIO_MSEC;
    int rc = cio_run_config(&cfg, child_main, NULL);
    fflush(stdout);
    return rc < 0 ? 100 : rc;
}
