/* Syscall fault injection for tests: link-time wrappers (-Wl,--wrap=...,
 * see tests/CMakeLists.txt) that make the Nth call of one system call
 * fail with a chosen errno, or transfer one byte only. Include in one
 * test file per executable. */
#ifndef CIO_TESTS_FAULTS_H
#define CIO_TESTS_FAULTS_H

#include <errno.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum call { C_RECV, C_SEND, C_READ, C_WRITE, C_ACCEPT4, C_CONNECT, C_SOCKET,
            C_EPOLL_CTL, C_SETSOCKOPT, C_NCALLS };
static const char *const call_names[C_NCALLS] = {
    "recv", "send", "read", "write", "accept4", "connect", "socket",
    "epoll_ctl", "setsockopt"};

#define SHORT (-1) /* fault kind: transfer one byte only */

static struct {
    bool armed;
    enum call which;
    long countdown; /* the call that reaches 0 fails */
    int err;        /* errno, or SHORT */
    bool fired;
    long calls[C_NCALLS];
} fault;

/* True if this call of `c` is the one to fail. */
static bool hit(enum call c)
{
    fault.calls[c]++;
    if (!fault.armed || fault.which != c || fault.fired)
        return false;
    if (--fault.countdown > 0)
        return false;
    fault.fired = true;
    return true;
}

ssize_t __real_recv(int fd, void *buf, size_t n, int flags);
ssize_t __real_send(int fd, const void *buf, size_t n, int flags);
ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags);
int __real_connect(int fd, const struct sockaddr *a, socklen_t len);
int __real_socket(int domain, int type, int proto);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_setsockopt(int fd, int level, int name, const void *v,
                      socklen_t len);

ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags)
{
    if (hit(C_RECV)) {
        if (fault.err != SHORT) {
            errno = fault.err;
            return -1;
        }
        n = n > 1 ? 1 : n;
    }
    return __real_recv(fd, buf, n, flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags)
{
    if (hit(C_SEND)) {
        if (fault.err != SHORT) {
            errno = fault.err;
            return -1;
        }
        n = n > 1 ? 1 : n;
    }
    return __real_send(fd, buf, n, flags);
}

ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    if (hit(C_READ)) {
        if (fault.err != SHORT) {
            errno = fault.err;
            return -1;
        }
        n = n > 1 ? 1 : n;
    }
    return __real_read(fd, buf, n);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (hit(C_WRITE)) {
        if (fault.err != SHORT) {
            errno = fault.err;
            return -1;
        }
        n = n > 1 ? 1 : n;
    }
    return __real_write(fd, buf, n);
}

int __wrap_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags)
{
    if (hit(C_ACCEPT4)) {
        errno = fault.err;
        return -1;
    }
    return __real_accept4(fd, a, len, flags);
}

int __wrap_connect(int fd, const struct sockaddr *a, socklen_t len);
int __wrap_connect(int fd, const struct sockaddr *a, socklen_t len)
{
    if (hit(C_CONNECT)) {
        errno = fault.err;
        return -1;
    }
    return __real_connect(fd, a, len);
}

int __wrap_socket(int domain, int type, int proto);
int __wrap_socket(int domain, int type, int proto)
{
    if (hit(C_SOCKET)) {
        errno = fault.err;
        return -1;
    }
    return __real_socket(domain, type, proto);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (hit(C_EPOLL_CTL)) {
        errno = fault.err;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}

int __wrap_setsockopt(int fd, int level, int name, const void *v,
                      socklen_t len);
int __wrap_setsockopt(int fd, int level, int name, const void *v,
                      socklen_t len)
{
    if (hit(C_SETSOCKOPT)) {
        errno = fault.err;
        return -1;
    }
    return __real_setsockopt(fd, level, name, v, len);
}

/* ---- sweeps ---------------------------------------------------------------
 * Needs "internal.h" and "test.h" included first. */

/* Send each of `lines` over `c` and read its echo back: 0, CIO_EOF if
 * the peer hung up (after a fault of its own), -EPROTO for an echo that
 * differs (lost, reordered or cut data: a real bug), or the error. */
static int echo_lines(cio_stream *c, const char *const *lines, int n)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        char buf[64];
        size_t len = strlen(lines[i]);
        rc = cio_stream_write(c, lines[i], len);
        if (rc == 0)
            rc = cio_stream_drain(c);
        ssize_t got = rc < 0 ? rc : cio_stream_readline(c, buf, sizeof buf);
        if (got == 0)
            rc = CIO_EOF;
        else if (got > 0 &&
                 ((size_t)got != len || memcmp(buf, lines[i], len) != 0))
            rc = -EPROTO;
        else if (got < 0)
            rc = (int)got;
    }
    return rc;
}

/* Errors an injected fault may legitimately surface as. */
static bool documented(int rc, int injected)
{
    switch (rc) {
    case 0:
    case -ECONNRESET:
    case -EPIPE:
    case -ECONNREFUSED:
    case -ETIMEDOUT:
    case -ENOMEM:
    case -EMFILE:
    case -ENFILE:
    case -EBADF:
    case CIO_EOF:
    case CIO_EINCOMPLETE:
    case CIO_ETLS: /* a fault inside a TLS handshake or record */
        return true;
    default:
        return rc == -injected;
    }
}

typedef struct row {
    enum call which;
    int err;
    bool must_succeed; /* the fault must be absorbed */
} row;

static const row table[] = {
    {C_RECV, EINTR, true},       {C_RECV, EAGAIN, true},
    {C_RECV, SHORT, true},       {C_RECV, ECONNRESET, false},
    {C_RECV, ENOMEM, false},     {C_SEND, EINTR, true},
    {C_SEND, EAGAIN, true},      {C_SEND, SHORT, true},
    {C_SEND, EPIPE, false},      {C_SEND, ECONNRESET, false},
    {C_READ, EINTR, false},      {C_WRITE, EINTR, false},
    {C_ACCEPT4, EMFILE, false},  {C_ACCEPT4, ECONNABORTED, false},
    {C_ACCEPT4, EINTR, false},   {C_CONNECT, ECONNREFUSED, false},
    {C_CONNECT, EINTR, false},   {C_SOCKET, EMFILE, false},
    {C_SOCKET, ENFILE, false},   {C_EPOLL_CTL, ENOMEM, false},
    {C_SETSOCKOPT, ENOMEM, false},
};

static long injected_total, survived_rows;

/* Sweep one row over `scenario`: fail the 1st, 2nd, ... call until the
 * scenario makes fewer calls than N. */
static int sweep(const row *r, int (*scenario)(void))
{
    long n;
    for (n = 1; n < 10000; n++) {
        int fds = cio_test_open_fds();
        long allocs = cio__alloc_live();
        cio_stats before;
        cio_stats_get(&before);
        fault.armed = true;
        fault.which = r->which;
        fault.countdown = n;
        fault.err = r->err;
        fault.fired = false;
        int rc = scenario();
        fault.armed = false;
        bool fired = fault.fired;
        /* Let closes and cancellations settle before counting. */
        for (int i = 0; i < 3; i++)
            cio_yield();
        cio_stats after;
        cio_stats_get(&after);
        const char *what = call_names[r->which];
        const char *err = r->err == SHORT ? "short" : cio_err_name(-r->err);
        if (!fired)
            break;
        injected_total++;
        if (!documented(rc, r->err) || (r->must_succeed && rc != 0)) {
            fprintf(stderr, "  %s #%ld %s: scenario returned %s\n", what, n,
                    err, cio_err_name(rc));
            return -1;
        }
        if (cio_test_open_fds() != fds ||
            after.tasks_alive != before.tasks_alive ||
            cio__alloc_live() != allocs) {
            fprintf(stderr, "  %s #%ld %s: left fds %d -> %d, tasks %llu -> "
                    "%llu, allocations %ld -> %ld\n", what, n, err, fds,
                    cio_test_open_fds(),
                    (unsigned long long)before.tasks_alive,
                    (unsigned long long)after.tasks_alive, allocs,
                    cio__alloc_live());
            return -1;
        }
        /* The loop keeps serving. */
        rc = scenario();
        if (rc != 0) {
            fprintf(stderr, "  %s #%ld %s: the clean run after it failed: %s\n",
                    what, n, err, cio_err_name(rc));
            return -1;
        }
    }
    survived_rows++;
    return (int)(n - 1);
}

#endif
