/* The line-echo connection handler the server, fault and cancellation
 * tests serve. */
#ifndef CIO_TESTS_ECHO_H
#define CIO_TESTS_ECHO_H

#include <cio.h>

/* A cio_server handler: send each line (up to 256 bytes) back and drain,
 * until the peer's end of file (0) or an error. `arg` is NULL or an int
 * that counts the lines echoed. */
static inline int serve_echo(cio_stream *s, void *arg)
{
    int *served = arg;
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
        if (served)
            (*served)++;
    }
}

#endif
