/* cio/tls.h: TLS over streams, with OpenSSL 3 (asyncio's ssl= argument).
 *
 * A TLS stream is a cio_stream: cio_stream_read, readexactly, readline,
 * readuntil, peek, write, drain, flush, write_eof and close all work on it
 * as on a plain stream, carrying plaintext; the ciphertext goes through an
 * inner plain stream. Water marks and pending counts are in ciphertext
 * bytes of that inner stream; cio_stream_fd gives its socket.
 *
 * Handshakes run under the caller's deadlines: put a timeout scope around
 * cio_tls_connect, cio_tls_start or cio_tls_accept. A failed handshake
 * returns CIO_ECERT (the peer's certificate was not accepted), CIO_ETLS
 * (any other TLS failure: no shared protocol version or cipher, an alert
 * from the peer, not TLS at all), -ECONNRESET (the peer hung up during the
 * handshake), -ETIMEDOUT or -ECANCELED; the reason in words ("certificate
 * has expired", "hostname mismatch", "tlsv1 alert unknown ca", ...) is
 * set as the calling task's error text (cio_task_errmsg(cio_current()),
 * see cio_errorf), and also kept by the context (cio_tls_ctx_last_error).
 *
 * End of stream: the peer's close_notify reads as end of stream (0). A
 * connection that ends without close_notify (a TCP FIN or reset in the
 * middle of the TLS stream: a truncation attack, or a crashed peer) reads
 * as -ECONNRESET, never as a clean end, so a cut-off response is not
 * mistaken for a whole one.
 *
 * Closing: cio_stream_close on a TLS stream sends close_notify (when the
 * handshake completed and the connection has not failed), flushes it under
 * the caller's deadlines and at most 5 s, and does not wait for the peer's
 * close_notify. Cancellation at any point (handshake, read, drain) leaves
 * the stream closable and leaks nothing; a read cancelled in the middle of
 * a TLS record keeps the bytes received so far for the next read.
 *
 * Only with CIO_HAVE_OPENSSL (the build found OpenSSL 3).
 */
#ifndef CIO_TLS_H
#define CIO_TLS_H

#include <stdbool.h>

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shared settings for many connections (an SSL_CTX): trust store,
 * certificates, ALPN, versions and, for clients, the session cache used
 * for resumption. Use it on the loop's thread only. */
typedef struct cio_tls_ctx cio_tls_ctx;

/* Protocol versions for cio_tls_config.min_version. */
#define CIO_TLS_1_2 0x0303
#define CIO_TLS_1_3 0x0304

typedef struct cio_tls_config {
    /* Certificates to trust, as a PEM file and/or an OpenSSL hashed
     * directory. Both NULL: the system's store (default verify paths).
     * A server reads them only with verify_client. */
    const char *ca_file;
    const char *ca_dir;
    /* PEM certificate chain (the certificate, then its intermediates:
     * the chain sent is what the file holds) and private key: required
     * for a server, optional for a client (a client certificate). */
    const char *cert_file;
    const char *key_file;
    /* Client: do not verify the server's certificate or host name (for
     * tests and self-signed peers; never for real traffic). Default
     * false: verification is on. */
    bool insecure;
    /* Server: ask for a client certificate and refuse clients without a
     * valid one (verified against ca_file / ca_dir). */
    bool verify_client;
    /* ALPN protocols, preferred first, NULL-terminated ({"h2",
     * "http/1.1", NULL}); NULL: no ALPN. A server picks the first of its
     * list that the client offers, and refuses the client when none
     * matches (a client that offers none is accepted without ALPN). */
    const char *const *alpn;
    /* Lowest protocol version accepted: CIO_TLS_1_2 (0 means it) or
     * CIO_TLS_1_3. */
    int min_version;
    /* Client: do not keep sessions for resumption. Default: sessions are
     * kept per server name and port, and a later connection to the same
     * one resumes (one ticket per server, the newest). */
    bool no_session_cache;
} cio_tls_config;

/* A context for client connections; `cfg` NULL means the defaults
 * (system trust store, verification on, TLS 1.2 or later, resumption
 * on). The caller owns `*out` and frees it with cio_tls_ctx_free. 0;
 * -EINVAL for a bad min_version or ALPN list (an empty name or one over
 * 255 bytes); CIO_ETLS if a file cannot be loaded (the reason is the
 * task's error text, as for handshakes); -ENOMEM. Does not suspend (it
 * reads the files given). */
int cio_tls_client_ctx_new(cio_tls_ctx **out, const cio_tls_config *cfg);

/* A context for server connections. `cfg` must name cert_file and
 * key_file (-EINVAL otherwise); errors as cio_tls_client_ctx_new, plus
 * CIO_ETLS when the key does not match the certificate. Does not
 * suspend. */
int cio_tls_server_ctx_new(cio_tls_ctx **out, const cio_tls_config *cfg);

/* Free `ctx`. Streams made with it keep working (they hold their own
 * reference). NULL is ignored. Does not suspend. */
void cio_tls_ctx_free(cio_tls_ctx *ctx);

/* The reason for the last failed handshake or load on `ctx`, or "" if
 * there was none. Valid until the next failure on `ctx`. */
const char *cio_tls_ctx_last_error(const cio_tls_ctx *ctx);

/* asyncio.open_connection(host, port, ssl=ctx, server_hostname=name):
 * connect to `host` (a name or a numeric address, looked up and tried as
 * cio_open_connection_host does, see cio/dns.h) and `port`, then run the
 * client handshake. `server_name` is sent as SNI (unless it is an IP
 * address) and checked against the certificate (a DNS name, or an IP
 * address checked against the certificate's IP entries); NULL means
 * `host`. The stream owns its connection: cio_stream_close ends both.
 * 0 with `*out` set; lookup and connection errors as
 * cio_open_connection_host; handshake errors as above (the connection is
 * then closed); -EINVAL; -ENOMEM; CIO_ENOTASK. Suspends. */
int cio_tls_connect(cio_stream **out, cio_tls_ctx *ctx, const char *host,
                    int port, const char *server_name,
                    const cio_stream_opts *opts);

/* STARTTLS: run a client handshake over the connected stream `plain` and
 * return a TLS stream over it. Bytes `plain` already holds in its read
 * buffer are the first bytes of the handshake, nothing is lost. `plain`
 * stays the caller's: do not use it while the TLS stream is open; close
 * the TLS stream first (close_notify), then `plain`. `server_name` is
 * sent as SNI and checked against the certificate (unless the context is
 * insecure); NULL skips both, which only an insecure context accepts
 * (-EINVAL otherwise). `opts` NULL: plain's defaults. 0; handshake
 * errors as above (then `plain` is unusable: close it); -EINVAL; -ENOMEM;
 * CIO_ENOTASK. Suspends. */
int cio_tls_start(cio_stream **out, cio_stream *plain, cio_tls_ctx *ctx,
                  const char *server_name, const cio_stream_opts *opts);

/* The server side of cio_tls_start, for instance in a cio_server handler
 * with the handler's stream: `plain` stays the caller's (the server
 * closes it after the handler), close the TLS stream before. Errors as
 * cio_tls_start. Suspends. */
int cio_tls_accept(cio_stream **out, cio_stream *plain, cio_tls_ctx *ctx,
                   const cio_stream_opts *opts);

/* Whether `s` is a TLS stream. */
bool cio_tls_is_tls(const cio_stream *s);

/* The ALPN protocol agreed on, NUL-terminated, or NULL when none (or `s`
 * is not TLS). Lives as long as `s`. */
const char *cio_tls_alpn(const cio_stream *s);

/* 1 if the handshake resumed an earlier session, 0 if it was a full
 * one, -EINVAL if `s` is not TLS. */
int cio_tls_resumed(const cio_stream *s);

/* The protocol version ("TLSv1.3"), or NULL if `s` is not TLS. */
const char *cio_tls_version(const cio_stream *s);

/* The subject of the peer's certificate, one line ("CN=localhost,O=cio"),
 * into `buf` (NUL-terminated). Returns its length; -ENOENT when the peer
 * sent no certificate (a client without one); -ENOSPC if `size` is too
 * small; -EINVAL if `s` is not TLS. Does not suspend. */
int cio_tls_peer_subject(const cio_stream *s, char *buf, size_t size);

/* Why the TLS stream last failed (a read or write error after the
 * handshake, "connection truncated without close_notify"), or "" if it
 * has not. NULL if `s` is not TLS. Lives as long as `s`. */
const char *cio_tls_last_error(const cio_stream *s);

#ifdef __cplusplus
}
#endif
#endif
