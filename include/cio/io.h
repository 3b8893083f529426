/* cio/io.h: fd waits, addresses, sockets, streams, servers.
 *
 * Sockets made by cio are non-blocking and close-on-exec. Every suspending
 * call here honours the deadlines of the caller's scopes and returns
 * -ECANCELED when cancelled; what a cancelled call consumed is said per
 * call. A cancelled call has finished with the caller's buffer when it
 * returns: the kernel will not write into it afterwards. */
#ifndef CIO_IO_H
#define CIO_IO_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netinet/in.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Waiting on any fd --------------------------------------------------- */

#define CIO_READABLE 1u
#define CIO_WRITABLE 2u

/* Wait until `fd` is readable and/or writable as `events` asks, or until
 * the absolute `deadline`. The hook for libraries that own their sockets
 * (libpq, c-ares): they say which fd and direction, the task waits, the
 * library does the I/O. Returns the ready subset of `events` (> 0; an
 * error or hang-up on the fd counts as ready for both, so the next I/O call
 * sees it); -ETIMEDOUT; -ECANCELED; -EINVAL for a negative fd, empty or
 * unknown `events` or a negative deadline; -EBADF for a closed fd (a
 * regular file is always ready, as poll(2) has it); -EBUSY if another task
 * already waits on the same fd and direction; CIO_ENOTASK. `fd` stays the
 * caller's; close it only when no task waits on it. Suspends. */
int cio_fd_wait(int fd, unsigned events, int64_t deadline);

/* ---- Addresses ----------------------------------------------------------- */

/* An IPv4, IPv6 or Unix-domain socket address. */
typedef struct cio_addr {
    socklen_t len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
} cio_addr;

/* Fill `a` from a numeric IPv4 or IPv6 address ("127.0.0.1", "::1",
 * "0.0.0.0") or "localhost" (127.0.0.1), and a port 0-65535.
 * 0; -EINVAL for anything else (names need the resolver). */
int cio_addr_ip(cio_addr *a, const char *ip, int port);
/* Fill `a` with a Unix-domain path (a leading '@' makes it abstract).
 * 0; -ENAMETOOLONG; -EINVAL. */
int cio_addr_unix(cio_addr *a, const char *path);
/* "1.2.3.4:80", "[::1]:80" or the path, into `buf`. Returns the length or
 * -ENOSPC / -EINVAL. */
int cio_addr_format(const cio_addr *a, char *buf, size_t size);
/* The port of an IP address, or -EINVAL. */
int cio_addr_port(const cio_addr *a);

/* ---- Sockets ------------------------------------------------------------- */

/* Flags for cio_listen. */
#define CIO_REUSEADDR 1u /* on by default unless CIO_NO_REUSEADDR */
#define CIO_REUSEPORT 2u
#define CIO_V6ONLY 4u
#define CIO_NO_REUSEADDR 8u

/* A non-blocking, close-on-exec socket. 0 or -errno. Does not suspend. */
int cio_socket(int *out, int domain, int type, int protocol);

/* A listening socket bound to `a` (SO_REUSEADDR on, as asyncio does).
 * `backlog` <= 0 means SOMAXCONN. 0 or -errno (-EADDRINUSE, ...). Does not
 * suspend. */
int cio_listen(int *out, const cio_addr *a, int backlog, unsigned flags);

/* Accept a connection on listening socket `fd`; the new socket (in
 * `*out`) is non-blocking and close-on-exec, and the peer's address goes
 * in `peer` if non-NULL. 0; -ECANCELED (no connection taken); -EMFILE /
 * -ENFILE when out of descriptors; -errno. Suspends. */
int cio_accept(int fd, int *out, cio_addr *peer);

/* Connect socket `fd` to `a`. 0; -ECONNREFUSED; -ECANCELED (the attempt is
 * abandoned: close `fd`); -errno. Suspends. */
int cio_connect(int fd, const cio_addr *a);

/* A TCP (or Unix stream) connection to `a`: socket + connect, TCP_NODELAY
 * on. 0 with `*out` the fd; errors as cio_connect (the fd is closed on
 * failure). Suspends. */
int cio_connect_addr(int *out, const cio_addr *a);

/* Receive up to `n` bytes. Returns the count (> 0), 0 at end of stream,
 * -ECANCELED (nothing received), -ECONNRESET, -errno. Suspends. */
ssize_t cio_recv(int fd, void *buf, size_t n, int flags);
/* Send up to `n` bytes: returns how many were sent (>= 1 once the socket
 * accepts any), -ECANCELED (nothing sent), -EPIPE, -ECONNRESET, -errno.
 * Never raises SIGPIPE. Suspends. */
ssize_t cio_send(int fd, const void *buf, size_t n, int flags);
/* Send all `n` bytes. Returns `n`; on error or cancellation the error,
 * with `*sent` (if non-NULL) telling how much went out. Suspends. */
ssize_t cio_send_all(int fd, const void *buf, size_t n, size_t *sent);
/* Datagrams: receive one (truncated to `n`), filling `from` if non-NULL;
 * send one to `to`. As cio_recv / cio_send. Suspend. */
ssize_t cio_recvfrom(int fd, void *buf, size_t n, cio_addr *from);
ssize_t cio_sendto(int fd, const void *buf, size_t n, const cio_addr *to);

/* shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR. 0 or -errno. */
int cio_shutdown(int fd, int how);
/* Close `fd`. Tasks waiting on it are woken with -EBADF first, so no wait
 * is left on a reused descriptor. Close an fd that cio's socket calls or
 * streams waited on with cio_close, not close(2): on epoll, a reuse of its
 * number by a file cio did not make is otherwise noticed only after a
 * short delay (about 10 ms). 0 or -errno. Does not suspend. */
int cio_close(int fd);

/* Socket options the way asyncio exposes them. 0 or -errno. */
int cio_set_nodelay(int fd, bool on);
int cio_set_keepalive(int fd, bool on);

/* ---- Streams (asyncio StreamReader / StreamWriter) ----------------------- */

/* On io_uring (Linux 6.0 and later) a socket stream's reads use one
 * multishot receive into buffers the loop provides to the kernel, armed
 * by the first read that has to wait: bytes are taken from the socket as
 * they arrive, also between reads, into the stream's read buffer. That
 * buffer does not grow for it (it only grows inside read calls, as
 * before): when it is full, up to 64 KiB more are kept aside and then the
 * receive is stopped, so a stream nobody reads holds at most its buffer,
 * those 64 KiB and what the socket had received, and the peer meets
 * TCP's flow control as usual. A read that is cancelled
 * consumes nothing; bytes that arrive after it stay for the next read.
 * Pointers from cio_stream_peek stay valid until the next reading call
 * or consume, as on epoll. */

typedef struct cio_stream cio_stream;

typedef struct cio_stream_opts {
    /* Longest line or readuntil match, in bytes (asyncio's `limit`);
     * 0: 64 KiB. */
    size_t limit;
    /* drain() waits while more than high_water bytes are buffered for
     * writing, until at most low_water are; 0: 64 KiB and 16 KiB. */
    size_t high_water, low_water;
} cio_stream_opts;

/* Wrap the connected socket or pipe `fd` in a stream; the stream owns
 * `fd` from then on, also on failure (then it is closed), and makes it
 * non-blocking. 0, -ENOMEM, -EINVAL. Does not suspend. */
int cio_stream_open(cio_stream **out, int fd, const cio_stream_opts *opts);

/* asyncio.open_connection(): connect to `host` and `port` and return a
 * stream. A numeric address (or "localhost") is connected directly; a
 * name is resolved and its addresses raced the RFC 8305 way
 * (cio_open_connection_host in cio/dns.h, default options). Errors as
 * cio_connect, plus the lookup's (CIO_ENOTFOUND, CIO_ENODATA, CIO_EDNS);
 * -EINVAL for a NULL or empty host or a port outside 0-65535. Suspends. */
int cio_open_connection(cio_stream **out, const char *host, int port,
                        const cio_stream_opts *opts);

/* Read up to `n` bytes (at least 1 unless at end of stream). Returns the
 * count, 0 at end of stream, -ECANCELED (nothing consumed), -ECONNRESET,
 * -errno. Suspends. */
ssize_t cio_stream_read(cio_stream *s, void *buf, size_t n);

/* Read exactly `n` bytes. Returns `n`; CIO_EINCOMPLETE if the stream ended
 * first: the bytes that did arrive are in `buf` and their count in
 * `*partial` (if non-NULL), and they are consumed. -ECANCELED: nothing is
 * consumed (bytes already buffered stay for the next read). Suspends. */
ssize_t cio_stream_readexactly(cio_stream *s, void *buf, size_t n,
                               size_t *partial);

/* Read up to and including the delimiter `delim` (`dlen` bytes) into
 * `buf`. Returns the length. -EMSGSIZE if no delimiter is found within
 * min(size, limit) bytes: nothing is consumed, the data stays buffered.
 * CIO_EINCOMPLETE at end of stream without a delimiter: the rest is copied
 * into `buf`, consumed, and its length stored in `*partial`. -ECANCELED:
 * nothing consumed. Suspends. */
ssize_t cio_stream_readuntil(cio_stream *s, void *buf, size_t size,
                             const void *delim, size_t dlen,
                             size_t *partial);

/* Read one line ending in '\n' (kept) into `buf` (not NUL-terminated).
 * At end of stream returns what is left (0 when nothing). -EMSGSIZE over
 * the limit (nothing consumed). -ECANCELED: nothing consumed.
 * Suspends. */
ssize_t cio_stream_readline(cio_stream *s, void *buf, size_t size);

/* Zero-copy reading: wait until at least `want` bytes (>= 1) are buffered
 * in the stream or it ended, and point `*data` at everything buffered.
 * Returns the count (less than `want` only at end of stream; 0 when
 * nothing is left), -ENOBUFS if `want` exceeds the limit, errors as
 * cio_stream_read. Nothing is consumed: call cio_stream_consume for what
 * was used. Suspends. */
ssize_t cio_stream_peek(cio_stream *s, const void **data, size_t want);
/* Drop `n` bytes from the front of the read buffer. -EINVAL if fewer are
 * buffered. Does not suspend. */
int cio_stream_consume(cio_stream *s, size_t n);
/* Bytes buffered for reading. */
size_t cio_stream_buffered(const cio_stream *s);

/* Queue `n` bytes for sending (copied). Sends at once what the socket
 * takes and buffers the rest; the buffer grows as needed: call
 * cio_stream_drain to wait for room. 0; -EPIPE after write_eof or close;
 * the connection's error once it failed; -ENOMEM. Does not suspend. */
int cio_stream_write(cio_stream *s, const void *buf, size_t n);
/* Backpressure: if more than high_water bytes are queued, wait until at
 * most low_water are. 0; -ECANCELED (queued data stays queued); the
 * connection's error. Suspends. */
int cio_stream_drain(cio_stream *s);
/* Wait until everything queued has been sent. As drain. Suspends. */
int cio_stream_flush(cio_stream *s);
/* Bytes queued and not yet sent. */
size_t cio_stream_write_pending(const cio_stream *s);
/* Flush, then shut the sending side of a socket (the peer reads end of
 * stream); reading still works. A pipe has no half-close: its stream is
 * flushed and refuses further writes; close it to end it. 0 or an error
 * as flush. Suspends. */
int cio_stream_write_eof(cio_stream *s);

/* Flush what is queued (under the caller's deadlines), close the fd and
 * free the stream. The stream is gone when this returns, whatever it
 * returns: 0, or the error that kept queued data from being sent
 * (-ECANCELED, -ECONNRESET, ...). NULL gives 0. Suspends. */
int cio_stream_close(cio_stream *s);
/* The stream's fd (still owned by the stream). */
int cio_stream_fd(const cio_stream *s);

/* ---- Servers (asyncio.start_server) -------------------------------------- */

typedef struct cio_server cio_server;
/* A connection handler: runs as its own task, in a group the server
 * owns. The server closes `s` after the handler returns. A failing handler
 * is reported, and does not stop the server. */
typedef int (*cio_conn_fn)(cio_stream *s, void *arg);

typedef struct cio_server_opts {
    int backlog;           /* listen backlog; 0: SOMAXCONN */
    size_t max_conns;      /* connections served at once; 0: no limit */
    unsigned listen_flags; /* CIO_REUSEPORT, CIO_V6ONLY, ... */
    cio_stream_opts stream;
    size_t stack_size;     /* handler task stacks; 0: loop default */
} cio_server_opts;

/* Listen on `a` and serve each connection with `fn(stream, arg)`. Above
 * max_conns, accepting pauses until a connection ends. When out of file
 * descriptors (EMFILE/ENFILE) accepting backs off (10 ms, doubling to 1 s)
 * instead of spinning. On io_uring (Linux 5.19 and later) one multishot
 * accept takes the connections, with no submission per connection;
 * connections the kernel took in one batch beyond max_conns wait,
 * accepted but not served, as they would in the listen queue, and are
 * closed if the server closes first. 0; -errno from listen; -ENOMEM;
 * CIO_ENOTASK. Does not suspend. */
int cio_server_start(cio_server **out, const cio_addr *a, cio_conn_fn fn,
                     void *arg, const cio_server_opts *opts);
/* The address the server listens on (with the port chosen by the kernel
 * when asked for port 0). */
const cio_addr *cio_server_addr(const cio_server *s);
/* Connections being served now. */
size_t cio_server_conns(const cio_server *s);
/* Wait until the server is closed (by cio_server_close from another task
 * or by cancellation). 0, -ECANCELED. Suspends. */
int cio_server_wait(cio_server *s);
/* Graceful close: stop accepting (a multishot accept is cancelled in the
 * kernel, and a connection it still delivers is closed), let connections
 * finish for up to `grace` ns, then cancel the rest and wait for them;
 * free the server. Connections accepted but not yet served are closed.
 * Returns 0, or -ECANCELED if the caller was cancelled (the connections
 * are then cancelled at once; the server is freed all the same).
 * Suspends. */
int cio_server_close(cio_server *s, int64_t grace);

#ifdef __cplusplus
}
#endif
#endif
