/* Helpers shared by the HTTP tests: a server on a free loopback port, raw
 * exchanges over a socket, and child processes (curl, python). */
#ifndef TEST_HTTP_UTIL_H
#define TEST_HTTP_UTIL_H

#include <cio/http.h>

#include <sys/wait.h>

#include "test.h"

/* The path of a helper script in tests/http_peers (next to this file). */
static inline const char *hu_peer(const char *name)
{
    static char path[1024];
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    int dl = slash ? (int)(slash - f) : 1;
    snprintf(path, sizeof path, "%.*s/http_peers/%s", dl, slash ? f : ".",
             name);
    return path;
}

static inline int hu_start(cio_http_server **out, cio_http_handler fn,
                           void *arg, const cio_http_server_opts *o)
{
    cio_addr a;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    return cio_http_server_start(out, &a, fn, arg, o);
}

static inline int hu_port(cio_http_server *s)
{
    return cio_addr_port(cio_http_server_addr(s));
}

/* Send `req` raw and read until the server closes or `ms` pass; the reply
 * (NUL-terminated) goes in `buf`. Returns its length or an error. */
static inline ssize_t hu_raw(int port, const void *req, size_t len, char *buf,
                             size_t size, int64_t ms)
{
    cio_stream *s;
    int rc = cio_open_connection(&s, "127.0.0.1", port, NULL);
    if (rc < 0)
        return rc;
    rc = cio_stream_write(s, req, len);
    if (rc == 0)
        rc = cio_stream_flush(s);
    size_t got = 0;
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(ms * CIO_MSEC), 0);
    while (rc == 0 && got < size - 1) {
        ssize_t n = cio_stream_read(s, buf + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    cio_scope_exit(&sc);
    buf[got] = '\0';
    cio_stream_close(s);
    return rc < 0 ? rc : (ssize_t)got;
}

/* The status code of the first response line in `buf`, or -1. */
static inline int hu_status(const char *buf)
{
    int st;
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
        return -1;
    return st;
}

/* How many responses (status lines) `buf` holds. */
static inline int hu_count(const char *buf, const char *needle)
{
    int n = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Run argv, capture stdout into out (NUL-terminated). Returns the exit
 * status (0-255) or an error. */
static inline int hu_run(char *const argv[], const char *in, char *out,
                         size_t size)
{
    cio_process *p;
    cio_process_opts o = {.stdin_mode = CIO_PROC_PIPE,
                          .stdout_mode = CIO_PROC_PIPE,
                          .stderr_mode = CIO_PROC_INHERIT};
    int rc = cio_process_spawn(&p, argv[0], argv, &o);
    if (rc < 0)
        return rc;
    cio_process_io io = {.in = in,
                         .in_len = in ? strlen(in) : 0,
                         .out = out,
                         .out_size = size - 1};
    int status = 0;
    rc = cio_process_communicate(p, &io, &status);
    cio_process_free(p);
    out[io.out_len < size - 1 ? io.out_len : size - 1] = '\0';
    if (rc < 0)
        return rc;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

#endif
