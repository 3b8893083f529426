/* The client side of the HTTP and WebSocket targets: send the fuzzed
 * content to the server in its chunks, half-close, and keep what the
 * server answers. */
#ifndef CIO_FUZZ_PEER_H
#define CIO_FUZZ_PEER_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cio.h>

/* What the server sent, grown with realloc (the caller frees `p`). */
typedef struct fuzz_output {
    unsigned char *p;
    size_t len, cap;
} fuzz_output;

/* Send `content` over `fd` in `nchunks` chunks (a loop turn after each:
 * the server sees them apart), shut down the writing side, then append
 * all the server sends to `out` until it closes. A server that closes
 * early is fine; a receive error other than a reset traps. Suspends. */
static inline void fuzz_exchange(int fd, const unsigned char *content,
                                 const size_t *chunks, size_t nchunks,
                                 fuzz_output *out)
{
    int rc = 0;
    size_t pos = 0;
    for (size_t i = 0; i < nchunks && rc == 0; i++) {
        size_t n = chunks[i];
        if (n > 0) {
            ssize_t r = cio_send_all(fd, content + pos, n, NULL);
            if (r < 0)
                rc = (int)r; /* the server closed early: fine */
            pos += n;
        }
        if (rc == 0)
            rc = cio_sleep(0);
    }
    cio_shutdown(fd, SHUT_WR);
    unsigned char buf[4096];
    for (;;) {
        ssize_t n = cio_recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (n != 0 && n != -ECONNRESET)
                __builtin_trap();
            return;
        }
        if (out->len + (size_t)n > out->cap) {
            out->cap = (out->len + (size_t)n) * 2;
            out->p = realloc(out->p, out->cap);
            if (out->p == NULL)
                __builtin_trap();
        }
        memcpy(out->p + out->len, buf, (size_t)n);
        out->len += (size_t)n;
    }
}

#endif
