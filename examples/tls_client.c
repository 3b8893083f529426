/* examples/tls_client.c: fetch "/" over HTTPS and print the response
 * head, with the certificate checked against CA_FILE (default: the
 * system's trust store).
 *
 *   tls_client HOST PORT [SERVER_NAME] [CA_FILE]
 *   tls_client 127.0.0.1 4433 localhost ca.pem
 *
 * Without arguments it prints this usage and exits with 77 (skipped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cio.h>
#include <cio/tls.h>

typedef struct job {
    const char *host, *name, *ca;
    int port;
} job;

static int fetch(cio_stream *s, const char *name)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     name);
    int rc = cio_stream_write(s, req, (size_t)n);
    if (rc < 0)
        return rc;
    char line[1024];
    for (;;) {
        ssize_t k = cio_stream_readline(s, line, sizeof line);
        if (k < 0)
            return (int)k;
        if (k <= 2) /* the blank line ends the head (or the stream ended) */
            return 0;
        printf("  %.*s", (int)k, line);
    }
}

static int client(void *arg)
{
    job *j = arg;
    cio_tls_config cfg = {.ca_file = j->ca};
    const char *alpn[] = {"http/1.1", NULL};
    cfg.alpn = alpn;
    cio_tls_ctx *ctx;
    int rc = cio_tls_client_ctx_new(&ctx, &cfg);
    if (rc < 0)
        return rc;
    /* The whole exchange within 10 s, handshake included. */
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(10 * CIO_SEC), 0);
    cio_stream *s;
    rc = cio_tls_connect(&s, ctx, j->host, j->port, j->name, NULL);
    if (rc == 0) {
        char subject[256];
        if (cio_tls_peer_subject(s, subject, sizeof subject) < 0)
            strcpy(subject, "?");
        printf("%s, ALPN %s, server %s\n", cio_tls_version(s),
               cio_tls_alpn(s) ? cio_tls_alpn(s) : "none", subject);
        rc = fetch(s, j->name);
        int crc = cio_stream_close(s); /* sends close_notify */
        if (rc == 0)
            rc = crc;
    } else if (rc == CIO_ECERT || rc == CIO_ETLS) {
        fprintf(stderr, "handshake: %s\n", cio_tls_ctx_last_error(ctx));
    }
    int src = cio_scope_exit(&sc);
    cio_tls_ctx_free(ctx);
    return src < 0 ? src : rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tls_client HOST PORT [SERVER_NAME] "
                        "[CA_FILE]\n");
        return 77;
    }
    job j = {.host = argv[1], .port = atoi(argv[2])};
    j.name = argc > 3 ? argv[3] : argv[1];
    j.ca = argc > 4 ? argv[4] : NULL;
    int rc = cio_run(client, &j);
    if (rc < 0) {
        fprintf(stderr, "tls_client: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
