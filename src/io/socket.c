/* Addresses and sockets. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "internal.h"

int cio_addr_ip(cio_addr *a, const char *ip, int port)
{
    if (a == NULL || ip == NULL || port < 0 || port > 65535)
        return -EINVAL;
    memset(a, 0, sizeof *a);
    if (strcmp(ip, "localhost") == 0)
        ip = "127.0.0.1";
    if (inet_pton(AF_INET, ip, &a->u.in.sin_addr) == 1) {
        a->u.in.sin_family = AF_INET;
        a->u.in.sin_port = htons((uint16_t)port);
        a->len = sizeof a->u.in;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &a->u.in6.sin6_addr) == 1) {
        a->u.in6.sin6_family = AF_INET6;
        a->u.in6.sin6_port = htons((uint16_t)port);
        a->len = sizeof a->u.in6;
        return 0;
    }
    return -EINVAL;
}

int cio_addr_unix(cio_addr *a, const char *path)
{
    if (a == NULL || path == NULL || path[0] == '\0')
        return -EINVAL;
    size_t n = strlen(path);
    if (n >= sizeof a->u.un.sun_path)
        return -ENAMETOOLONG;
    memset(a, 0, sizeof *a);
    a->u.un.sun_family = AF_UNIX;
    memcpy(a->u.un.sun_path, path, n);
    if (path[0] == '@')
        a->u.un.sun_path[0] = '\0';
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                         (path[0] == '@' ? 0 : 1));
    return 0;
}

int cio_addr_port(const cio_addr *a)
{
    if (a == NULL)
        return -EINVAL;
    if (a->u.sa.sa_family == AF_INET)
        return ntohs(a->u.in.sin_port);
    if (a->u.sa.sa_family == AF_INET6)
        return ntohs(a->u.in6.sin6_port);
    return -EINVAL;
}

int cio_addr_format(const cio_addr *a, char *buf, size_t size)
{
    if (a == NULL || buf == NULL || size == 0)
        return -EINVAL;
    char ip[INET6_ADDRSTRLEN];
    int n;
    switch (a->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof ip);
        n = snprintf(buf, size, "%s:%d", ip, ntohs(a->u.in.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof ip);
        n = snprintf(buf, size, "[%s]:%d", ip, ntohs(a->u.in6.sin6_port));
        break;
    case AF_UNIX:
        if (a->u.un.sun_path[0] == '\0' &&
            a->len > offsetof(struct sockaddr_un, sun_path))
            n = snprintf(buf, size, "@%.*s",
                         (int)(a->len - offsetof(struct sockaddr_un,
                                                 sun_path) - 1),
                         a->u.un.sun_path + 1);
        else
            n = snprintf(buf, size, "%s", a->u.un.sun_path);
        break;
    default:
        return -EINVAL;
    }
    return (size_t)n >= size ? -ENOSPC : n;
}

int cio_socket(int *out, int domain, int type, int protocol)
{
    if (out == NULL)
        return -EINVAL;
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd == -1)
        return -errno;
    cio__fd_opened(fd);
    *out = fd;
    return 0;
}

static int setopt(int fd, int level, int opt, int val)
{
    if (setsockopt(fd, level, opt, &val, sizeof val) == -1)
        return -errno;
    return 0;
}

int cio_set_nodelay(int fd, bool on)
{
    return setopt(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

int cio_set_keepalive(int fd, bool on)
{
    return setopt(fd, SOL_SOCKET, SO_KEEPALIVE, on);
}

int cio_listen(int *out, const cio_addr *a, int backlog, unsigned flags)
{
    if (out == NULL || a == NULL || a->len == 0)
        return -EINVAL;
    int fd;
    int rc = cio_socket(&fd, a->u.sa.sa_family, SOCK_STREAM, 0);
    if (rc < 0)
        return rc;
    bool ip = a->u.sa.sa_family != AF_UNIX;
    if (ip && !(flags & CIO_NO_REUSEADDR))
        rc = setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && ip && (flags & CIO_REUSEPORT))
        rc = setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (rc == 0 && a->u.sa.sa_family == AF_INET6)
        rc = setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(flags & CIO_V6ONLY));
    if (rc == 0 && bind(fd, &a->u.sa, a->len) == -1)
        rc = -errno;
    if (rc == 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) == -1)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

typedef struct accept_ctx {
    int fd;
    cio_addr *peer;
} accept_ctx;

static ssize_t try_accept(int fd, void *p)
{
    accept_ctx *c = p;
    cio_addr tmp;
    cio_addr *a = c->peer ? c->peer : &tmp;
    a->len = sizeof a->u;
    int s = accept4(fd, &a->u.sa, &a->len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s == -1)
        return errno == EWOULDBLOCK ? -EAGAIN
               : errno == EINTR     ? -EAGAIN
                                    : -errno;
    cio__fd_opened(s);
    c->fd = s;
    return 0;
}

int cio_accept(int fd, int *out, cio_addr *peer)
{
    if (fd < 0 || out == NULL)
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_ACCEPT, .fd = fd};
    if (peer) {
        op.addr = &peer->u.sa;
        op.addrlen = sizeof peer->u;
    }
    ssize_t r = cio__op_run(&op);
    if (r != -ENOTSUP) {
        if (r < 0)
            return (int)r;
        if (peer)
            peer->len = op.addrlen;
        *out = (int)r;
        return 0;
    }
    accept_ctx c = {.fd = -1, .peer = peer};
    ssize_t rc = cio__io(fd, CIO_READABLE, try_accept, &c);
    if (rc < 0)
        return (int)rc;
    *out = c.fd;
    return 0;
}

int cio_connect(int fd, const cio_addr *a)
{
    CIO__SELF_OR_RETURN(t);
    if (fd < 0 || a == NULL || a->len == 0)
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_CONNECT, .fd = fd,
                  .addr = (struct sockaddr *)&a->u.sa, .addrlen = a->len};
    int rc = (int)cio__op_run(&op);
    if (rc != -ENOTSUP)
        return rc;
    rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    if (connect(fd, &a->u.sa, a->len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -errno;
    rc = cio__fd_wait(t, fd, CIO_WRITABLE, CIO_NEVER);
    if (rc < 0)
        return rc;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return -errno;
    return -err;
}

int cio_connect_addr(int *out, const cio_addr *a)
{
    if (out == NULL || a == NULL || a->len == 0)
        return -EINVAL;
    int fd;
    int rc = cio_socket(&fd, a->u.sa.sa_family, SOCK_STREAM, 0);
    if (rc < 0)
        return rc;
    rc = cio_connect(fd, a);
    if (rc == 0 && a->u.sa.sa_family != AF_UNIX)
        rc = cio_set_nodelay(fd, true);
    if (rc < 0) {
        cio_close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

typedef struct xfer {
    void *buf;
    size_t n;
    int flags;
    cio_addr *addr;
} xfer;

static ssize_t errno_rc(void)
{
    return (errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN : -errno;
}

static ssize_t try_recv(int fd, void *p)
{
    xfer *x = p;
    ssize_t n = recv(fd, x->buf, x->n, x->flags);
    return n >= 0 ? n : errno_rc();
}

static ssize_t try_send(int fd, void *p)
{
    xfer *x = p;
    ssize_t n = send(fd, x->buf, x->n, x->flags | MSG_NOSIGNAL);
    return n >= 0 ? n : errno_rc();
}

static ssize_t try_recvfrom(int fd, void *p)
{
    xfer *x = p;
    cio_addr tmp;
    cio_addr *a = x->addr ? x->addr : &tmp;
    a->len = sizeof a->u;
    ssize_t n = recvfrom(fd, x->buf, x->n, 0, &a->u.sa, &a->len);
    return n >= 0 ? n : errno_rc();
}

static ssize_t try_sendto(int fd, void *p)
{
    xfer *x = p;
    ssize_t n = sendto(fd, x->buf, x->n, MSG_NOSIGNAL, &x->addr->u.sa,
                       x->addr->len);
    return n >= 0 ? n : errno_rc();
}

ssize_t cio_recv(int fd, void *buf, size_t n, int flags)
{
    if (fd < 0 || (buf == NULL && n > 0))
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_RECV, .fd = fd, .buf = buf, .len = n,
                  .flags = flags};
    ssize_t rc = cio__op_run(&op);
    if (rc != -ENOTSUP)
        return rc;
    xfer x = {buf, n, flags, NULL};
    return cio__io(fd, CIO_READABLE, try_recv, &x);
}

ssize_t cio_send(int fd, const void *buf, size_t n, int flags)
{
    if (fd < 0 || (buf == NULL && n > 0))
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_SEND, .fd = fd, .buf = (void *)buf,
                  .len = n, .flags = flags};
    ssize_t rc = cio__op_run(&op);
    if (rc != -ENOTSUP)
        return rc;
    xfer x = {(void *)buf, n, flags, NULL};
    return cio__io(fd, CIO_WRITABLE, try_send, &x);
}

ssize_t cio_send_all(int fd, const void *buf, size_t n, size_t *sent)
{
    size_t done = 0;
    ssize_t rc = 0;
    while (done < n) {
        rc = cio_send(fd, (const char *)buf + done, n - done, 0);
        if (rc < 0)
            break;
        done += (size_t)rc;
    }
    if (sent)
        *sent = done;
    return rc < 0 ? rc : (ssize_t)n;
}

ssize_t cio_recvfrom(int fd, void *buf, size_t n, cio_addr *from)
{
    if (fd < 0 || (buf == NULL && n > 0))
        return -EINVAL;
    xfer x = {buf, n, 0, from};
    return cio__io(fd, CIO_READABLE, try_recvfrom, &x);
}

ssize_t cio_sendto(int fd, const void *buf, size_t n, const cio_addr *to)
{
    if (fd < 0 || (buf == NULL && n > 0) || to == NULL || to->len == 0)
        return -EINVAL;
    xfer x = {(void *)buf, n, 0, (cio_addr *)to};
    return cio__io(fd, CIO_WRITABLE, try_sendto, &x);
}

int cio_shutdown(int fd, int how)
{
    if (shutdown(fd, how) == -1)
        return -errno;
    return 0;
}

int cio_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    cio_loop *l = cio__loop;
    if (l && l->backend)
        l->bops->closing(l->backend, fd);
    /* close(2) releases the fd even when it reports EINTR: never retry. */
    if (close(fd) == -1 && errno != EINTR)
        return -errno;
    return 0;
}
