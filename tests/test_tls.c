/* TLS over streams: cio against cio, and against openssl s_server and
 * s_client, on loopback, with certificates made for the run. */
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cio/tls.h"
#include "test.h"
#include "tls_util.h"

static tls_files files;
static pid_t files_owner;

__attribute__((constructor)) static void files_init(void)
{
    if (tls_files_make(&files) != 0) {
        fprintf(stderr, "test_tls: cannot make test certificates\n");
        exit(1);
    }
    files_owner = getpid();
}

__attribute__((destructor)) static void files_fini(void)
{
    if (getpid() == files_owner)
        tls_files_remove(&files);
}

/* ---- a TLS server in the test's loop ------------------------------------- */

enum srv_mode {
    SRV_ECHO = 0,  /* echo lines until end of stream */
    SRV_BULK,      /* read `bulk` bytes, send `bulk` back, end */
    SRV_TRUNCATE,  /* send "partial", then a FIN without close_notify */
    SRV_HELLO_EOF, /* send "hello\n", then close_notify, read to end */
    SRV_STARTTLS,  /* read "STARTTLS\n" in plaintext, then TLS echo */
    SRV_SILENT,    /* accept TCP, never speak TLS: wait for end */
};

typedef struct srv {
    cio_server *server;
    cio_tls_ctx *ctx;
    int mode;
    size_t bulk;
    int accepted;      /* handshakes done */
    int failed;        /* the last handshake error */
    int got_eof;       /* SRV_HELLO_EOF: the client's close_notify seen */
    size_t buffered;   /* SRV_STARTTLS: plaintext buffered before TLS */
    char subject[128]; /* the client's certificate subject */
} srv;

static int echo_lines(cio_stream *s)
{
    char line[512];
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

static int bulk_echo(srv *sv, cio_stream *s)
{
    char *buf = malloc(sv->bulk);
    if (buf == NULL)
        return -ENOMEM;
    ssize_t n = cio_stream_readexactly(s, buf, sv->bulk, NULL);
    int rc = n < 0 ? (int)n : cio_stream_write(s, buf, sv->bulk);
    if (rc == 0)
        rc = cio_stream_flush(s);
    free(buf);
    return rc;
}

static int serve_tls(srv *sv, cio_stream *t)
{
    switch (sv->mode) {
    case SRV_BULK:
        return bulk_echo(sv, t);
    case SRV_TRUNCATE: {
        int rc = cio_stream_write(t, "partial", 7);
        if (rc == 0)
            rc = cio_stream_flush(t);
        shutdown(cio_stream_fd(t), SHUT_WR); /* no close_notify */
        char b[8];
        cio_stream_read(t, b, sizeof b);
        return rc;
    }
    case SRV_HELLO_EOF: {
        int rc = cio_stream_write(t, "hello\n", 6);
        if (rc == 0)
            rc = cio_stream_write_eof(t);
        char b[64];
        ssize_t n;
        while (rc == 0 && (n = cio_stream_read(t, b, sizeof b)) > 0)
            ;
        if (rc == 0 && n == 0)
            sv->got_eof = 1;
        return rc;
    }
    default:
        return echo_lines(t);
    }
}

static int handler(cio_stream *s, void *arg)
{
    srv *sv = arg;
    if (sv->mode == SRV_SILENT) {
        char b[64];
        while (cio_stream_read(s, b, sizeof b) > 0)
            ;
        return 0;
    }
    if (sv->mode == SRV_STARTTLS) {
        char line[64];
        ssize_t n = cio_stream_readline(s, line, sizeof line);
        if (n != 9 || memcmp(line, "STARTTLS\n", 9) != 0)
            return -EPROTO;
        /* The client sent its ClientHello without waiting: have some of
         * it in the plain stream's buffer before the handshake. */
        const void *d;
        if (cio_stream_peek(s, &d, 1) <= 0)
            return -EPROTO;
        sv->buffered = cio_stream_buffered(s);
    }
    cio_stream *t;
    int rc = cio_tls_accept(&t, s, sv->ctx, NULL);
    if (rc < 0) {
        sv->failed = rc;
        return rc;
    }
    sv->accepted++;
    if (cio_tls_peer_subject(t, sv->subject, sizeof sv->subject) < 0)
        sv->subject[0] = '\0';
    rc = serve_tls(sv, t);
    int crc = cio_stream_close(t);
    return rc < 0 ? rc : crc;
}

/* Start a server with certificate `cert`/`key` (and `cfg` for the rest,
 * NULL for defaults). */
static int srv_start(srv *sv, int mode, const char *cert, const char *key,
                     const cio_tls_config *cfg)
{
    memset(sv, 0, sizeof *sv);
    sv->mode = mode;
    cio_tls_config c = cfg ? *cfg : (cio_tls_config){0};
    c.cert_file = cert;
    c.key_file = key;
    int rc = cio_tls_server_ctx_new(&sv->ctx, &c);
    if (rc < 0)
        return rc;
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    rc = cio_server_start(&sv->server, &a, handler, sv, NULL);
    if (rc < 0)
        cio_tls_ctx_free(sv->ctx);
    return rc;
}

static int srv_port(const srv *sv)
{
    return cio_addr_port(cio_server_addr(sv->server));
}

static int srv_stop(srv *sv)
{
    int rc = cio_server_close(sv->server, CIO_SEC);
    cio_tls_ctx_free(sv->ctx);
    return rc;
}

static int client_ctx(cio_tls_ctx **out)
{
    cio_tls_config c = {.ca_file = files.ca};
    return cio_tls_client_ctx_new(out, &c);
}

static int line_roundtrip(cio_stream *s, const char *msg)
{
    ASSERT_OK(cio_stream_write(s, msg, strlen(msg)));
    char buf[512];
    ssize_t n = cio_stream_readline(s, buf, sizeof buf);
    ASSERT_EQ((ssize_t)strlen(msg), n);
    ASSERT_TRUE(memcmp(buf, msg, (size_t)n) == 0);
    return 0;
}

/* ---- cio against cio ----------------------------------------------------- */

TEST_REALTIME(tls_client_server_lines)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    ASSERT_TRUE(cio_tls_is_tls(s));
    ASSERT_STR_EQ("TLSv1.3", cio_tls_version(s));
    char subj[128];
    ASSERT_TRUE(cio_tls_peer_subject(s, subj, sizeof subj) > 0);
    ASSERT_STR_EQ("CN=localhost,O=cio tests", subj);
    ASSERT_EQ(-ENOSPC, cio_tls_peer_subject(s, subj, 4));
    ASSERT_STR_EQ("", cio_tls_last_error(s));
    ASSERT_OK(line_roundtrip(s, "hello over tls\n"));
    /* readexactly and readuntil over records of any size. */
    ASSERT_OK(cio_stream_write(s, "abc\ndefgh\nij\n", 13));
    char buf[16];
    ASSERT_EQ(6, cio_stream_readexactly(s, buf, 6, NULL));
    ASSERT_TRUE(memcmp(buf, "abc\nde", 6) == 0);
    ASSERT_EQ(4, cio_stream_readuntil(s, buf, sizeof buf, "\n", 1, NULL));
    ASSERT_TRUE(memcmp(buf, "fgh\n", 4) == 0);
    ASSERT_EQ(3, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(srv_stop(&sv));
    ASSERT_EQ(1, sv.accepted);
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_ip_address_is_verified)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    /* No server name: the host, an IP in the certificate's SAN. */
    ASSERT_OK(cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), NULL, NULL));
    ASSERT_OK(line_roundtrip(s, "by address\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_EQ(CIO_ECERT, cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv),
                                         "10.1.2.3", NULL));
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

/* Connect to a server with `cert` and expect `err` with `why` in the
 * task's error text. */
static int expect_refused(const char *cert, const char *key, const char *name,
                          int err, const char *why)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, cert, key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s = NULL;
    ASSERT_EQ(err,
              cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), name, NULL));
    ASSERT_TRUE(s == NULL);
    const char *msg = cio_task_errmsg(cio_current());
    if (msg == NULL || strstr(msg, why) == NULL)
        TEST_FAIL_("error text \"%s\" lacks \"%s\"", msg ? msg : "", why);
    ASSERT_TRUE(strstr(cio_tls_ctx_last_error(cx), why) != NULL);
    ASSERT_OK(srv_stop(&sv));
    ASSERT_EQ(0, sv.accepted);
    ASSERT_TRUE(sv.failed < 0);
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_expired_certificate_refused)
{
    return expect_refused(files.expired_cert, files.expired_key, "localhost",
                          CIO_ECERT, "certificate has expired");
}

TEST_REALTIME(tls_wrong_hostname_refused)
{
    return expect_refused(files.other_cert, files.other_key, "localhost",
                          CIO_ECERT, "hostname mismatch");
}

TEST_REALTIME(tls_self_signed_refused_unless_insecure)
{
    if (expect_refused(files.self_cert, files.self_key, "localhost", CIO_ECERT,
                       "self-signed certificate") != 0)
        return -1;
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.self_cert, files.self_key, NULL));
    cio_tls_config c = {.insecure = true};
    cio_tls_ctx *cx;
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    cio_stream *s;
    ASSERT_OK(cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv),
                              "whatever.example", NULL));
    ASSERT_OK(line_roundtrip(s, "insecure but encrypted\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_not_tls_peer_is_protocol_error)
{
    /* The peer answers the ClientHello with an HTTP error. */
    int sv_fd[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_fd));
    cio_stream *a;
    ASSERT_OK(cio_stream_open(&a, sv_fd[0], NULL));
    const char junk[] = "HTTP/1.0 400 Bad Request\r\n\r\n";
    ASSERT_EQ((ssize_t)sizeof junk, write(sv_fd[1], junk, sizeof junk));
    cio_tls_config c = {.insecure = true};
    cio_tls_ctx *cx;
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    cio_stream *t = NULL;
    ASSERT_EQ(CIO_ETLS, cio_tls_start(&t, a, cx, NULL, NULL));
    ASSERT_TRUE(t == NULL);
    ASSERT_TRUE(strstr(cio_tls_ctx_last_error(cx), "wrong version") != NULL);
    ASSERT_OK(cio_stream_close(a));
    close(sv_fd[1]);
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_bad_arguments)
{
    cio_tls_ctx *cx = NULL;
    cio_tls_config c = {0};
    ASSERT_EQ(-EINVAL, cio_tls_client_ctx_new(NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_tls_server_ctx_new(&cx, &c)); /* no cert */
    c.min_version = 0x0301;
    ASSERT_EQ(-EINVAL, cio_tls_client_ctx_new(&cx, &c));
    const char *empty[] = {"", NULL};
    c = (cio_tls_config){.alpn = empty};
    ASSERT_EQ(-EINVAL, cio_tls_client_ctx_new(&cx, &c));
    c = (cio_tls_config){.ca_file = "/nonexistent/ca.pem"};
    ASSERT_EQ(CIO_ETLS, cio_tls_client_ctx_new(&cx, &c));
    c = (cio_tls_config){.cert_file = files.good_cert,
                         .key_file = files.other_key};
    ASSERT_EQ(CIO_ETLS, cio_tls_server_ctx_new(&cx, &c));
    ASSERT_TRUE(cx == NULL);
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s = NULL;
    ASSERT_EQ(-EINVAL, cio_tls_connect(&s, NULL, "127.0.0.1", 1, NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_tls_start(&s, NULL, cx, "x", NULL));
    ASSERT_EQ(-EINVAL, cio_tls_accept(&s, NULL, cx, NULL));
    /* A verifying client needs a name to check. */
    int sv_fd[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_fd));
    cio_stream *a;
    ASSERT_OK(cio_stream_open(&a, sv_fd[0], NULL));
    ASSERT_EQ(-EINVAL, cio_tls_start(&s, a, cx, NULL, NULL));
    ASSERT_EQ(-EINVAL, cio_tls_accept(&s, a, cx, NULL)); /* client ctx */
    /* Accessors on a plain stream. */
    ASSERT_TRUE(!cio_tls_is_tls(a));
    ASSERT_TRUE(cio_tls_alpn(a) == NULL);
    ASSERT_EQ(-EINVAL, cio_tls_resumed(a));
    ASSERT_TRUE(cio_tls_version(a) == NULL);
    ASSERT_TRUE(cio_tls_last_error(a) == NULL);
    char b[8];
    ASSERT_EQ(-EINVAL, cio_tls_peer_subject(a, b, sizeof b));
    ASSERT_OK(cio_stream_close(a));
    close(sv_fd[1]);
    ASSERT_EQ(-ECONNREFUSED,
              cio_tls_connect(&s, cx, "127.0.0.1", 1, "localhost", NULL));
    cio_tls_ctx_free(cx);
    cio_tls_ctx_free(NULL);
    return 0;
}

/* ---- large transfers ----------------------------------------------------- */

typedef struct bulk_job {
    cio_stream *s;
    const char *data;
    size_t n;
} bulk_job;

static int bulk_writer(void *arg)
{
    bulk_job *j = arg;
    size_t chunk = 100 * 1000; /* not a multiple of the record size */
    for (size_t off = 0; off < j->n; off += chunk) {
        size_t k = j->n - off < chunk ? j->n - off : chunk;
        int rc = cio_stream_write(j->s, j->data + off, k);
        if (rc == 0)
            rc = cio_stream_drain(j->s);
        if (rc < 0)
            return rc;
    }
    return cio_stream_flush(j->s);
}

TEST_REALTIME(tls_large_transfer_both_ways)
{
    size_t n = 8u << 20;
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_BULK, files.good_cert, files.good_key, NULL));
    sv.bulk = n;
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(cio_tls_connect(&s, cx, "localhost", srv_port(&sv), NULL, NULL));
    char *out = malloc(n), *in = malloc(n);
    ASSERT_TRUE(out && in);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(i * 2654435761u >> 13);
    /* Write and read at once: the server echoes while it reads. */
    bulk_job j = {s, out, n};
    cio_task *w;
    ASSERT_OK(cio_spawn(&w, bulk_writer, &j));
    size_t got = 0;
    while (got < n) {
        ssize_t k = cio_stream_read(s, in + got, n - got);
        if (k <= 0)
            TEST_FAIL_("read %zd after %zu bytes", k, got);
        got += (size_t)k;
    }
    ASSERT_OK(cio_task_join(w));
    cio_task_free(w);
    ASSERT_TRUE(memcmp(in, out, n) == 0);
    char b[4];
    ASSERT_EQ(0, cio_stream_read(s, b, sizeof b)); /* close_notify */
    free(in);
    free(out);
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

/* ---- ALPN, resumption, client certificates ------------------------------- */

TEST_REALTIME(tls_alpn_negotiation)
{
    const char *srv_protos[] = {"h2", "http/1.1", NULL};
    cio_tls_config sc = {.alpn = srv_protos};
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, &sc));
    const char *mine[] = {"http/1.1", "h2", NULL};
    cio_tls_config c = {.ca_file = files.ca, .alpn = mine};
    cio_tls_ctx *cx;
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    ASSERT_STR_EQ("h2", cio_tls_alpn(s)); /* the server's preference */
    ASSERT_OK(cio_stream_close(s));
    cio_tls_ctx_free(cx);
    /* Nothing in common: refused. */
    const char *other[] = {"imap", NULL};
    c.alpn = other;
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    ASSERT_EQ(CIO_ETLS, cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv),
                                        "localhost", NULL));
    cio_tls_ctx_free(cx);
    /* No ALPN offered: accepted without. */
    ASSERT_OK(client_ctx(&cx));
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    ASSERT_TRUE(cio_tls_alpn(s) == NULL);
    ASSERT_OK(cio_stream_close(s));
    cio_tls_ctx_free(cx);
    ASSERT_OK(srv_stop(&sv));
    return 0;
}

static int connect_once(cio_tls_ctx *cx, int port, int *resumed)
{
    cio_stream *s;
    ASSERT_OK(cio_tls_connect(&s, cx, "127.0.0.1", port, "localhost", NULL));
    /* A round trip also takes in the session tickets. */
    ASSERT_OK(line_roundtrip(s, "again\n"));
    *resumed = cio_tls_resumed(s);
    ASSERT_OK(cio_stream_close(s));
    return 0;
}

TEST_REALTIME(tls_session_resumption)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    int r = -1;
    ASSERT_OK(connect_once(cx, srv_port(&sv), &r));
    ASSERT_EQ(0, r);
    ASSERT_OK(connect_once(cx, srv_port(&sv), &r));
    ASSERT_EQ(1, r);
    cio_tls_ctx_free(cx);
    /* Without the cache, every handshake is a full one. */
    cio_tls_config c = {.ca_file = files.ca, .no_session_cache = true};
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    ASSERT_OK(connect_once(cx, srv_port(&sv), &r));
    ASSERT_OK(connect_once(cx, srv_port(&sv), &r));
    ASSERT_EQ(0, r);
    cio_tls_ctx_free(cx);
    ASSERT_OK(srv_stop(&sv));
    return 0;
}

TEST_REALTIME(tls_client_certificate_required)
{
    cio_tls_config sc = {.ca_file = files.ca, .verify_client = true};
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, &sc));
    cio_tls_config c = {.ca_file = files.ca,
                        .cert_file = files.client_cert,
                        .key_file = files.client_key};
    cio_tls_ctx *cx;
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    ASSERT_OK(line_roundtrip(s, "with a client cert\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_STR_EQ("CN=cio client,O=cio tests", sv.subject);
    cio_tls_ctx_free(cx);
    /* Without one: TLS 1.3 clients learn it at their first read. */
    ASSERT_OK(client_ctx(&cx));
    int rc =
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL);
    if (rc == 0) {
        char b[8];
        ASSERT_OK(cio_stream_write(s, "x\n", 2));
        ASSERT_EQ(CIO_ETLS, cio_stream_read(s, b, sizeof b));
        ASSERT_TRUE(strstr(cio_tls_last_error(s), "certificate") != NULL);
        ASSERT_OK(cio_stream_close(s));
    } else {
        ASSERT_EQ(CIO_ETLS, rc);
    }
    cio_tls_ctx_free(cx);
    ASSERT_OK(srv_stop(&sv));
    ASSERT_EQ(CIO_ECERT, sv.failed);
    return 0;
}

/* ---- STARTTLS ------------------------------------------------------------ */

TEST_REALTIME(tls_start_after_plaintext_keeps_buffered_bytes)
{
    srv sv;
    ASSERT_OK(
        srv_start(&sv, SRV_STARTTLS, files.good_cert, files.good_key, NULL));
    cio_stream *p;
    ASSERT_OK(cio_open_connection(&p, "127.0.0.1", srv_port(&sv), NULL));
    ASSERT_OK(cio_stream_write(p, "STARTTLS\n", 9));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(cio_tls_start(&s, p, cx, "localhost", NULL));
    ASSERT_OK(line_roundtrip(s, "now secret\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(cio_stream_close(p));
    ASSERT_OK(srv_stop(&sv));
    ASSERT_EQ(1, sv.accepted);
    ASSERT_TRUE(sv.buffered > 0);
    cio_tls_ctx_free(cx);
    return 0;
}

/* ---- end of stream ------------------------------------------------------- */

TEST_REALTIME(tls_close_notify_both_ways)
{
    srv sv;
    ASSERT_OK(
        srv_start(&sv, SRV_HELLO_EOF, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    char buf[16];
    ASSERT_EQ(6, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_EQ(0, cio_stream_read(s, buf, sizeof buf)); /* close_notify */
    ASSERT_EQ(0, cio_stream_read(s, buf, sizeof buf));
    /* Half-closed: we may still write, then our close_notify. */
    ASSERT_OK(cio_stream_write(s, "bye\n", 4));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(srv_stop(&sv));
    ASSERT_EQ(1, sv.got_eof);
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_truncation_is_an_error)
{
    srv sv;
    ASSERT_OK(
        srv_start(&sv, SRV_TRUNCATE, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    char buf[16];
    ASSERT_EQ(7, cio_stream_readexactly(s, buf, 7, NULL));
    ASSERT_EQ(-ECONNRESET, cio_stream_read(s, buf, sizeof buf));
    ASSERT_EQ(-ECONNRESET, cio_stream_read(s, buf, sizeof buf));
    ASSERT_TRUE(strstr(cio_tls_last_error(s), "close_notify") != NULL);
    cio_stream_close(s);
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

/* ---- cancellation -------------------------------------------------------- */

TEST_REALTIME(tls_cancel_mid_handshake)
{
    srv sv; /* never answers the ClientHello */
    ASSERT_OK(
        srv_start(&sv, SRV_SILENT, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s = NULL;
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(50 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv),
                                          "localhost", NULL));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(s == NULL);
    /* The server side: a client that never sends its hello. */
    srv sv2;
    ASSERT_OK(srv_start(&sv2, SRV_ECHO, files.good_cert, files.good_key, NULL));
    cio_stream *p;
    ASSERT_OK(cio_open_connection(&p, "127.0.0.1", srv_port(&sv2), NULL));
    while (cio_server_conns(sv2.server) == 0) /* its handler is running */
        ASSERT_OK(cio_sleep(CIO_MSEC));
    ASSERT_OK(cio_server_close(sv2.server, 0)); /* cancels the handshake */
    ASSERT_EQ(-ECANCELED, sv2.failed);
    cio_tls_ctx_free(sv2.ctx);
    ASSERT_OK(cio_stream_close(p));
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_cancel_mid_read_keeps_stream_usable)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    cio_tls_ctx_free(cx); /* the stream keeps what it needs */
    char buf[64];
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(30 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(line_roundtrip(s, "still here\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(srv_stop(&sv));
    return 0;
}

/* A TCP proxy in front of a TLS server that can cut the next chunk from
 * the server in two and hold the second part until released. */
typedef struct proxy {
    cio_server *server;
    int target; /* the TLS server's port */
    bool split; /* cut the next chunk from the server */
    bool held;  /* the first part went out, the rest waits */
    cio_event release;
} proxy;

typedef struct pipe_job {
    cio_stream *from, *to;
} pipe_job;

static int forward(void *arg)
{
    pipe_job *j = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = cio_stream_read(j->from, buf, sizeof buf);
        if (n <= 0)
            return (int)n;
        int rc = cio_stream_write(j->to, buf, (size_t)n);
        if (rc == 0)
            rc = cio_stream_flush(j->to);
        if (rc < 0)
            return rc;
    }
}

static int proxy_handler(cio_stream *s, void *arg)
{
    proxy *px = arg;
    cio_stream *up;
    int rc = cio_open_connection(&up, "127.0.0.1", px->target, NULL);
    if (rc < 0)
        return rc;
    pipe_job j = {s, up};
    cio_task *t;
    rc = cio_spawn(&t, forward, &j);
    if (rc < 0) {
        cio_stream_close(up);
        return rc;
    }
    char buf[4096];
    while (rc == 0) {
        ssize_t n = cio_stream_read(up, buf, sizeof buf);
        if (n <= 0)
            break;
        size_t first = px->split && n > 8 ? 8 : (size_t)n;
        rc = cio_stream_write(s, buf, first);
        if (rc == 0)
            rc = cio_stream_flush(s);
        if (rc == 0 && first < (size_t)n) {
            px->split = false;
            px->held = true;
            rc = cio_event_wait(&px->release);
            if (rc == 0)
                rc = cio_stream_write(s, buf + first, (size_t)n - first);
        }
    }
    cio_task_cancel(t);
    cio_task_join(t);
    cio_task_free(t);
    cio_stream_close(up);
    return rc;
}

TEST_REALTIME(tls_cancel_mid_record_keeps_the_part_received)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    proxy px = {.target = srv_port(&sv)};
    cio_event_init(&px.release);
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    ASSERT_OK(cio_server_start(&px.server, &a, proxy_handler, &px, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(cio_tls_connect(&s, cx, "127.0.0.1",
                              cio_addr_port(cio_server_addr(px.server)),
                              "localhost", NULL));
    ASSERT_OK(line_roundtrip(s, "through the proxy\n"));
    /* The echo's record arrives cut: the read times out mid-record. */
    px.split = true;
    ASSERT_OK(cio_stream_write(s, "cut in two\n", 11));
    char buf[64];
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(px.held);
    /* The rest arrives: the record is whole, nothing was lost. */
    ASSERT_OK(cio_event_set(&px.release));
    ASSERT_EQ(11, cio_stream_readline(s, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, "cut in two\n", 11) == 0);
    ASSERT_OK(line_roundtrip(s, "and after\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(cio_server_close(px.server, CIO_SEC));
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

static int reader(void *arg)
{
    char b[16];
    return (int)cio_stream_read(arg, b, sizeof b);
}

TEST_REALTIME(tls_close_wakes_a_reader)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    /* A stream that owns its connection. */
    cio_stream *s;
    ASSERT_OK(
        cio_tls_connect(&s, cx, "127.0.0.1", srv_port(&sv), "localhost", NULL));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, reader, s));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_EQ(-EBADF, cio_task_join(t));
    cio_task_free(t);
    /* One over the caller's stream (STARTTLS). */
    cio_stream *p;
    ASSERT_OK(cio_open_connection(&p, "127.0.0.1", srv_port(&sv), NULL));
    ASSERT_OK(cio_tls_start(&s, p, cx, "localhost", NULL));
    ASSERT_OK(cio_spawn(&t, reader, s));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_EQ(-EBADF, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_stream_close(p));
    ASSERT_OK(srv_stop(&sv));
    cio_tls_ctx_free(cx);
    return 0;
}

/* ---- real peers: openssl s_server and s_client --------------------------- */

static int free_port(void)
{
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    int fd;
    if (cio_listen(&fd, &a, 1, 0) < 0)
        return -1;
    cio_addr b = {.len = sizeof b.u};
    getsockname(fd, &b.u.sa, &b.len);
    close(fd);
    return cio_addr_port(&b);
}

/* Start `openssl s_server -rev` (each line sent back reversed) on a free
 * port, with `extra` options (NULL-terminated, at most 4). */
static int s_server(cio_process **out, int *port, const char *const *extra)
{
    *port = free_port();
    if (*port < 0)
        return *port;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", *port);
    char *argv[20] = {
        "openssl", "s_server", "-quiet",        "-rev", "-accept",
        ps,        "-cert",    files.good_cert, "-key", files.good_key};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i] && i < 4; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    cio_process_opts po = {.stdin_mode = CIO_PROC_DEVNULL,
                           .stdout_mode = CIO_PROC_DEVNULL,
                           .stderr_mode = CIO_PROC_DEVNULL};
    return cio_process_spawn(out, "openssl", argv, &po);
}

/* Connect once s_server listens. */
static int s_server_connect(cio_stream **s, cio_tls_ctx *cx, int port)
{
    for (int i = 0; i < 300; i++) {
        int rc = cio_tls_connect(s, cx, "127.0.0.1", port, "localhost", NULL);
        if (rc != -ECONNREFUSED)
            return rc;
        rc = cio_sleep(10 * CIO_MSEC);
        if (rc < 0)
            return rc;
    }
    return -ECONNREFUSED;
}

static int s_server_stop(cio_process *pr)
{
    cio_process_kill(pr, SIGTERM);
    int st;
    int rc = cio_process_wait(pr, &st);
    cio_process_free(pr);
    return rc;
}

TEST_REALTIME(tls_against_openssl_s_server)
{
    cio_process *pr;
    int port;
    ASSERT_OK(s_server(&pr, &port, NULL));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(s_server_connect(&s, cx, port));
    ASSERT_STR_EQ("TLSv1.3", cio_tls_version(s));
    ASSERT_OK(cio_stream_write(s, "hello openssl\n", 14));
    char buf[64];
    ssize_t n = cio_stream_readline(s, buf, sizeof buf);
    ASSERT_TRUE(n >= 13);
    ASSERT_TRUE(memcmp(buf, "lssnepo olleh", 13) == 0);
    /* A palindrome reads the same reversed. */
    ASSERT_OK(line_roundtrip(s, "aba\n"));
    ASSERT_OK(cio_stream_close(s));
    ASSERT_OK(s_server_stop(pr));
    cio_tls_ctx_free(cx);
    return 0;
}

TEST_REALTIME(tls_against_openssl_s_server_tls12)
{
    static const char *const v12[] = {"-tls1_2", NULL};
    cio_process *pr;
    int port;
    ASSERT_OK(s_server(&pr, &port, v12));
    cio_tls_ctx *cx;
    ASSERT_OK(client_ctx(&cx));
    cio_stream *s;
    ASSERT_OK(s_server_connect(&s, cx, port));
    ASSERT_STR_EQ("TLSv1.2", cio_tls_version(s));
    ASSERT_OK(line_roundtrip(s, "level\n"));
    ASSERT_OK(cio_stream_close(s));
    cio_tls_ctx_free(cx);
    /* A client that wants TLS 1.3 at least is refused. */
    cio_tls_config c = {.ca_file = files.ca, .min_version = CIO_TLS_1_3};
    ASSERT_OK(cio_tls_client_ctx_new(&cx, &c));
    ASSERT_EQ(CIO_ETLS, s_server_connect(&s, cx, port));
    ASSERT_TRUE(strstr(cio_tls_ctx_last_error(cx), "version") != NULL);
    cio_tls_ctx_free(cx);
    ASSERT_OK(s_server_stop(pr));
    return 0;
}

TEST_REALTIME(tls_against_openssl_s_client)
{
    srv sv;
    ASSERT_OK(srv_start(&sv, SRV_ECHO, files.good_cert, files.good_key, NULL));
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", srv_port(&sv));
    char *argv[] = {"openssl",
                    "s_client",
                    "-quiet",
                    "-connect",
                    hp,
                    "-servername",
                    "localhost",
                    "-verify_return_error",
                    "-verify_hostname",
                    "localhost",
                    "-CAfile",
                    files.ca,
                    NULL};
    cio_process_opts po = {.stdin_mode = CIO_PROC_PIPE,
                           .stdout_mode = CIO_PROC_PIPE,
                           .stderr_mode = CIO_PROC_DEVNULL};
    cio_process *pr;
    ASSERT_OK(cio_process_spawn(&pr, "openssl", argv, &po));
    cio_stream *in = cio_process_stdin(pr), *out = cio_process_stdout(pr);
    ASSERT_OK(cio_stream_write(in, "ping from s_client\n", 19));
    char buf[64];
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(10 * CIO_SEC), 0));
    ssize_t n = cio_stream_readline(out, buf, sizeof buf);
    ASSERT_OK(cio_scope_exit(&sc));
    ASSERT_EQ(19, n);
    ASSERT_TRUE(memcmp(buf, "ping from s_client\n", 19) == 0);
    cio_process_kill(pr, SIGTERM);
    int st;
    ASSERT_OK(cio_process_wait(pr, &st));
    cio_process_free(pr);
    ASSERT_OK(srv_stop(&sv));
    ASSERT_EQ(1, sv.accepted);
    return 0;
}
