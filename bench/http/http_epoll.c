/* bench/http: the baseline, a raw epoll HTTP server with a hand-written
 * parser that only finds the end of each head (no bodies), answering
 * every request with "Hello, World!" and a Date header cached per second.
 * Level-triggered, one read and one write per batch of pipelined
 * requests. Usage: http_epoll PORT. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384

typedef struct conn {
    int fd;
    size_t in;
    char buf[BUF];
} conn;

static char date[40];
static time_t date_sec;

static void update_date(void)
{
    time_t now = time(NULL);
    if (now == date_sec)
        return;
    date_sec = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void serve(conn *c)
{
    static char out[BUF * 4];
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->in, BUF - c->in);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return;
            goto drop;
        }
        c->in += (size_t)n;
        size_t o = 0, off = 0;
        update_date();
        for (;;) {
            char *end = memmem(c->buf + off, c->in - off, "\r\n\r\n", 4);
            if (end == NULL)
                break;
            off = (size_t)(end - c->buf) + 4;
            o += (size_t)snprintf(out + o, sizeof out - o,
                                  "HTTP/1.1 200 OK\r\nDate: %s\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 13\r\n\r\nHello, World!",
                                  date);
            if (o > sizeof out - 256)
                break;
        }
        memmove(c->buf, c->buf + off, c->in - off);
        c->in -= off;
        if (c->in == BUF)
            goto drop; /* a head too big */
        if (o && write(c->fd, out, o) != (ssize_t)o)
            goto drop; /* wrk never fills a socket buffer here */
        if ((size_t)n < BUF - c->in)
            return;
    }
drop:
    close(c->fd);
    free(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: http_epoll PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) {
        perror("http_epoll: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c != NULL) {
                serve(c);
                continue;
            }
            int fd;
            while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = malloc(sizeof *c);
                c->fd = fd;
                c->in = 0;
                ev.events = EPOLLIN;
                ev.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            }
        }
    }
}
