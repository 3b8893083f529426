/* Syscall fault injection over a TLS exchange: the handshake and three
 * echoed lines, with every call of the kinds in tests/faults.h failing in
 * turn (see test_faults.c for the rules checked after each run). */
#include "internal.h"
#include "test.h"

#include "faults.h"
#include "tls_util.h"

static tls_files files;
static cio_tls_ctx *server_ctx, *client_ctx;

static int tls_echo(cio_stream *plain, void *arg)
{
    (void)arg;
    cio_stream *t;
    int rc = cio_tls_accept(&t, plain, server_ctx, NULL);
    if (rc < 0)
        return rc;
    char line[64];
    ssize_t n;
    while ((n = cio_stream_readline(t, line, sizeof line)) > 0) {
        rc = cio_stream_write(t, line, (size_t)n);
        if (rc == 0)
            rc = cio_stream_drain(t);
        if (rc < 0)
            break;
    }
    int crc = cio_stream_close(t);
    return rc < 0 ? rc : n < 0 ? (int)n : crc;
}

/* The client: a handshake, then three lines echoed. Its own task, so
 * that the error text a failed handshake leaves on it goes with it. */
static int tls_client(void *arg)
{
    static const char *const lines[] = {"ping\n", "over TLS\n", "x\n"};
    cio_stream *c = NULL;
    int rc = cio_tls_connect(&c, client_ctx, "127.0.0.1", *(int *)arg,
                             "localhost", NULL);
    if (rc == 0)
        rc = echo_lines(c, lines, 3);
    if (c)
        cio_stream_close(c);
    return rc;
}

/* A TLS echo server and its client, under a 2 s deadline. */
static int tls_exchange(void)
{
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0);
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    int rc = cio_server_start(&srv, &a, tls_echo, NULL, NULL);
    if (rc < 0) {
        cio_scope_exit(&sc);
        return rc;
    }
    int port = cio_addr_port(cio_server_addr(srv));
    cio_task *t;
    rc = cio_spawn(&t, tls_client, &port);
    if (rc == 0) {
        rc = cio_task_join(t);
        cio_task_free(t);
    }
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_server_close(srv, 0);
    cio_scope_exit(&sh);
    int src = cio_scope_exit(&sc);
    return src < 0 && rc == -ECANCELED ? src : rc;
}

TEST_REALTIME(faults_every_call_of_a_tls_exchange)
{
    ASSERT_EQ(0, tls_files_make(&files));
    cio_tls_config sc = {.cert_file = files.good_cert,
                         .key_file = files.good_key};
    /* No session cache: a stored ticket would count as a live allocation
     * between runs. */
    cio_tls_config cc = {.ca_file = files.ca, .no_session_cache = true};
    ASSERT_OK(cio_tls_server_ctx_new(&server_ctx, &sc));
    ASSERT_OK(cio_tls_client_ctx_new(&client_ctx, &cc));
    int rc = tls_exchange();
    for (size_t i = 0; rc == 0 && i < sizeof table / sizeof table[0]; i++)
        if (sweep(&table[i], tls_exchange) < 0)
            rc = -1;
    cio_tls_ctx_free(client_ctx);
    cio_tls_ctx_free(server_ctx);
    tls_files_remove(&files);
    ASSERT_OK(rc);
    printf("     %ld faults injected over %ld (call, error) kinds, all "
           "survived\n", injected_total, survived_rows);
    ASSERT_TRUE(injected_total > 0);
    return 0;
}
