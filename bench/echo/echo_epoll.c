/* echo_epoll.c: the raw epoll echo server, the physical-limit anchor.
 *
 * One thread, edge-triggered registrations made once per connection, no
 * re-arming. A read shorter than the buffer proves the socket drained, so
 * the steady state is read + write per message plus a shared epoll_wait.
 * Data the socket does not take is queued, and EPOLLOUT is asked for only
 * then; reading pauses while that queue is over PAUSE_AT bytes.
 *
 * With "oneshot" as the second argument it makes the syscalls a
 * readiness-based coroutine runtime makes: EPOLLONESHOT registrations
 * re-armed with EPOLL_CTL_MOD after every wakeup, and reads repeated until
 * EAGAIN. Comparing the two modes prices that pattern apart from the
 * runtime's own code.
 *
 * Usage: echo_epoll PORT [oneshot] (listens on 127.0.0.1). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE ((size_t)64 * 1024)
#define PAUSE_AT ((size_t)1024 * 1024)
#define MAX_EVENTS 512

/* Data waiting to be written on one connection. */
typedef struct pend {
    char *buf;
    size_t pos, len, cap;
    bool paused; /* reading stopped until the queue drains */
} pend;

static int epfd;
static bool oneshot;
static pend *pends; /* indexed by fd */
static size_t npends;
static char rbuf[BUF_SIZE];

static void fail(const char *what)
{
    fprintf(stderr, "echo_epoll: %s: %s\n", what, strerror(errno));
    exit(1);
}

static pend *pend_of(int fd)
{
    if ((size_t)fd >= npends) {
        size_t n = npends ? npends : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        pend *v = realloc(pends, n * sizeof *v);
        if (v == NULL)
            fail("realloc");
        memset(v + npends, 0, (n - npends) * sizeof *v);
        pends = v;
        npends = n;
    }
    return &pends[fd];
}

static void drop(int fd)
{
    if ((size_t)fd < npends) {
        free(pends[fd].buf);
        pends[fd] = (pend){0};
    }
    /* Closing removes the registration: no other process shares it. */
    close(fd);
}

/* Register the interest `fd`'s state calls for. */
static int arm(int fd, int op)
{
    pend *q = pend_of(fd);
    struct epoll_event ev = {.events = oneshot ? EPOLLONESHOT : EPOLLET,
                             .data.fd = fd};
    if (!q->paused)
        ev.events |= EPOLLIN;
    if (q->len > 0)
        ev.events |= EPOLLOUT;
    return epoll_ctl(epfd, op, fd, &ev);
}

static int queue(int fd, const char *p, size_t n)
{
    pend *q = pend_of(fd);
    bool was_empty = q->len == 0;
    if (was_empty)
        q->pos = 0;
    if (q->pos + q->len + n > q->cap) {
        memmove(q->buf, q->buf + q->pos, q->len);
        q->pos = 0;
        size_t cap = q->cap ? q->cap : BUF_SIZE;
        while (cap < q->len + n)
            cap *= 2;
        char *b = realloc(q->buf, cap);
        if (b == NULL)
            fail("realloc");
        q->buf = b;
        q->cap = cap;
    }
    memcpy(q->buf + q->pos + q->len, p, n);
    q->len += n;
    /* Edge-triggered: ask for EPOLLOUT now; one-shot arms after the
     * event is handled. */
    if (was_empty && !oneshot)
        return arm(fd, EPOLL_CTL_MOD);
    return 0;
}

/* Send `n` bytes or queue what the socket does not take. -1 on error. */
static int echo_out(int fd, const char *p, size_t n)
{
    if ((size_t)fd < npends && pends[fd].len > 0)
        return queue(fd, p, n);
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return queue(fd, p, n);
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read until the socket is drained (or the queue is too long). */
static int read_all(int fd)
{
    for (;;) {
        if ((size_t)fd < npends && pends[fd].len > PAUSE_AT) {
            pend_of(fd)->paused = true;
            return oneshot ? 0 : arm(fd, EPOLL_CTL_MOD);
        }
        ssize_t n = recv(fd, rbuf, BUF_SIZE, 0);
        if (n > 0) {
            if (echo_out(fd, rbuf, (size_t)n) < 0)
                return -1;
            if ((size_t)n < BUF_SIZE && !oneshot)
                return 0;
        } else if (n < 0 && errno == EAGAIN) {
            return 0;
        } else if (n == 0 || errno != EINTR) {
            return -1;
        }
    }
}

/* Send queued data. */
static int write_queued(int fd)
{
    pend *q = pend_of(fd);
    while (q->len > 0) {
        ssize_t k = send(fd, q->buf + q->pos, q->len, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        q->pos += (size_t)k;
        q->len -= (size_t)k;
    }
    bool paused = q->paused;
    q->paused = false;
    if (!oneshot && arm(fd, EPOLL_CTL_MOD) == -1)
        return -1;
    /* No new edge comes for data that arrived while paused. */
    return paused ? read_all(fd) : 0;
}

static void on_event(int fd, uint32_t e)
{
    int rc = 0;
    if (e & EPOLLOUT)
        rc = write_queued(fd);
    if (rc == 0 && (e & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        rc = read_all(fd);
    if (rc == 0 && oneshot)
        rc = arm(fd, EPOLL_CTL_MOD);
    if (rc < 0)
        drop(fd);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                perror("echo_epoll: accept4");
            return;
        }
        int one = 1;
        *pend_of(fd) = (pend){0};
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ==
                -1 ||
            arm(fd, EPOLL_CTL_ADD) == -1) {
            perror("echo_epoll: new connection");
            close(fd);
        }
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        fail("socket");
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1)
        fail("SO_REUSEADDR");
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == -1)
        fail("bind");
    if (listen(fd, SOMAXCONN) == -1)
        fail("listen");
    return fd;
}

int main(int argc, char **argv)
{
    char *end = "";
    long port = argc >= 2 ? strtol(argv[1], &end, 10) : -1;
    oneshot = argc == 3 && strcmp(argv[2], "oneshot") == 0;
    if (argc < 2 || argc > 3 || (argc == 3 && !oneshot) || *end != '\0' ||
        port < 1 || port > 65535) {
        fprintf(stderr, "usage: echo_epoll PORT [oneshot]\n");
        return 2;
    }
    int lfd = listen_on((int)port);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd == -1)
        fail("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.fd = lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) == -1)
        fail("epoll_ctl");
    static struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lfd)
                on_accept(lfd);
            else
                on_event(evs[i].data.fd, evs[i].events);
        }
    }
}
