/* cio/websocket.h: WebSocket (RFC 6455) over the HTTP server and client.
 *
 * A server handler turns its request into a WebSocket with cio_ws_accept
 * (aiohttp's WebSocketResponse.prepare); a client opens one with
 * cio_ws_connect (aiohttp's ClientSession.ws_connect). Messages are
 * reassembled from fragments; text is checked to be UTF-8; pings are
 * answered by cio_ws_recv; the close handshake runs in cio_ws_close and
 * when the peer starts it. No extensions (no permessage-deflate).
 *
 * One task may receive while another sends: a frame is queued whole, so
 * frames never interleave. Not thread-safe.
 */
#ifndef CIO_WEBSOCKET_H
#define CIO_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_ws cio_ws;

/* Message types. */
#define CIO_WS_TEXT 1
#define CIO_WS_BINARY 2

/* Close codes (RFC 6455 7.4.1). */
#define CIO_WS_NORMAL 1000
#define CIO_WS_GOING_AWAY 1001
#define CIO_WS_PROTOCOL_ERROR 1002
#define CIO_WS_UNSUPPORTED 1003
#define CIO_WS_NO_STATUS 1005 /* received: the close frame had no code */
#define CIO_WS_ABNORMAL 1006  /* received: no close frame at all */
#define CIO_WS_INVALID_DATA 1007
#define CIO_WS_POLICY 1008
#define CIO_WS_TOO_BIG 1009
#define CIO_WS_INTERNAL 1011

typedef struct cio_ws_opts {
    size_t max_message;    /* reassembled message; 0: 16 MiB (1009 above) */
    int64_t close_timeout; /* wait for the peer's close; 0: 5 s */
    /* cio_ws_recv gives up after this long without a whole message
     * (-ETIMEDOUT), as aiohttp's receive_timeout; 0: only the caller's
     * scopes limit it. */
    int64_t recv_timeout;
    /* Client: the Sec-WebSocket-Protocol to ask for; server: the one to
     * answer with (the client must have offered it). NULL: none. */
    const char *protocol;
    /* Client: extra request headers (checked as in cio/http.h). */
    const cio_http_header *headers;
    size_t nheaders;
    /* Client: connect + handshake; 0: 10 s. */
    int64_t connect_timeout;
    /* Client, wss://: the TLS context (NULL: the defaults). */
    cio_tls_ctx *tls;
} cio_ws_opts;

/* Server: complete the opening handshake for `r` and answer 101. The
 * request must be a GET/1.1 with `Upgrade: websocket`, `Connection:
 * upgrade`, a valid Sec-WebSocket-Key and version 13: otherwise the
 * answer is sent here (400, or 426 with the supported version) and
 * -EPROTO returned. The WebSocket uses the handler's connection: close it
 * with cio_ws_close before the handler returns; the connection is closed
 * after. 0; -EPROTO; -EALREADY if the response had started; -EINVAL;
 * -ENOMEM; a send error. Suspends. */
int cio_ws_accept(cio_ws **out, cio_http_req *r, cio_http_writer *w,
                  const cio_ws_opts *opts);

/* Client: connect to a ws:// or wss:// URL and run the handshake. 0 with
 * `*out` (the caller closes it with cio_ws_close); -EINVAL (bad URL or
 * header); -EPROTONOSUPPORT (another scheme, or wss:// without OpenSSL);
 * connection and TLS errors as cio_http_request; -ETIMEDOUT; CIO_EHTTP
 * when the server does not switch protocols (its status in
 * `*status` when `status` is non-NULL) or answers with a bad
 * Sec-WebSocket-Accept; -ECANCELED. Suspends. */
int cio_ws_connect(cio_ws **out, const char *url, const cio_ws_opts *opts,
                   int *status);

/* Send one message of `type` (CIO_WS_TEXT or CIO_WS_BINARY) in one
 * frame. Text must be UTF-8 (-EINVAL otherwise). 0; -EPIPE once a close
 * was sent or received; a stream error; -ECANCELED (the frame may be
 * queued whole or not at all, never in part). Suspends (backpressure). */
int cio_ws_send(cio_ws *ws, int type, const void *data, size_t n);

/* Send a ping (payload at most 125 bytes: -EINVAL above). Suspends. */
int cio_ws_ping(cio_ws *ws, const void *data, size_t n);

/* Receive the next message: returns its type (CIO_WS_TEXT or
 * CIO_WS_BINARY) with `*data` / `*len` pointing into a buffer of `ws`
 * valid until the next receive. Pings are answered and pongs dropped on
 * the way. CIO_EOF once the peer closed (the close is answered; the code
 * in cio_ws_close_code, 1006 when the connection ended without a close
 * frame); CIO_EHTTP for a protocol violation by the peer and -EMSGSIZE
 * for a message above max_message (a close with 1002, 1007 or 1009 was
 * sent, see cio_ws_close_code); -ETIMEDOUT after recv_timeout;
 * -ECANCELED; stream errors. A timeout or cancellation between messages
 * leaves `ws` usable; inside a message, or any other error, makes it
 * unusable (later calls give -EPIPE): close it. Suspends. */
int cio_ws_recv(cio_ws *ws, const void **data, size_t *len);

/* The close code received from the peer (or sent, after a protocol
 * error), 0 while open. */
int cio_ws_close_code(const cio_ws *ws);

/* Run the closing handshake with `code` (1000 when 0) and a UTF-8
 * `reason` (NULL: none; at most 123 bytes), wait up to close_timeout for
 * the peer's close, release everything and free `ws`. `ws` is gone when
 * this returns, whatever it returns: 0, or the error that cut the
 * handshake short. NULL gives 0. Suspends. */
int cio_ws_close(cio_ws *ws, int code, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
