/* load.c: closed-loop load for the echo servers.
 *
 * N connections to 127.0.0.1:PORT each send a message, wait for all of its
 * echo, and send again, on one thread with one level-triggered epoll set.
 * After the warm-up, requests completed during the measured window are
 * counted and their latencies recorded in a log-linear histogram. Prints
 * `name value unit` lines:
 *
 *   echo.rps          requests per second in the window
 *   echo.p50_us       median latency
 *   echo.p99_us       99th percentile latency
 *   echo.requests     requests completed in the window
 *   echo.total        requests completed in the whole run
 *   echo.cpu_us_per_req   with -p: the server's utime+stime per request
 *
 * Usage: load [-c CONNS] [-d SECONDS] [-w SECONDS] [-s BYTES]
 *             [-p SERVER_PID] [-a CPU] PORT
 *
 * Timestamps are taken once per epoll_wait batch: a request's latency runs
 * from the batch that sent it to the batch that saw its last byte. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 10000
#define MAX_MSG 65536
#define MAX_EVENTS 512
#define CONNECT_WAIT_NS (5 * 1000000000LL)

/* ---- latency histogram: 64 sub-buckets per power of two (error < 1.6%) */

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define NBUCKETS (58 * SUB + 2 * SUB)

static uint64_t hist[NBUCKETS];
static uint64_t hist_n;

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - SUB_BITS;
    return shift * SUB + (unsigned)(v >> shift);
}

/* The middle of bucket `i`, in the histogram's unit. */
static double bucket_mid(unsigned i)
{
    if (i < 2 * SUB)
        return i;
    unsigned shift = i / SUB - 1;
    uint64_t lo = (uint64_t)(i - shift * SUB) << shift;
    return (double)lo + (double)(1ull << shift) / 2;
}

static void hist_add(uint64_t v)
{
    hist[bucket_of(v)]++;
    hist_n++;
}

static double hist_quantile(double q)
{
    if (hist_n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)hist_n + 0.999999);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += hist[i];
        if (seen >= want)
            return bucket_mid(i);
    }
    return bucket_mid(NBUCKETS - 1);
}

/* ---- helpers ------------------------------------------------------------ */

typedef struct conn {
    int fd;
    uint32_t got;
    int64_t sent_at;
} conn;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "load: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* utime + stime of process `pid` in clock ticks, or -1. */
static long long proc_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: fields restart after the last ')'.
     * utime and stime are fields 14 and 15; ')' ends field 2. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long ut, st;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

static long parse_num(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "load: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static double parse_secs(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || v < 0 || v > 3600) {
        fprintf(stderr, "load: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

/* A connected, non-blocking TCP_NODELAY socket. The first connection
 * waits up to CONNECT_WAIT_NS for the server to start listening. */
static int dial(int port, int64_t give_up)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd == -1)
            die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            int one = 1;
            if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                           sizeof one) == -1)
                die("TCP_NODELAY");
            int fl = fcntl(fd, F_GETFL);
            if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
                die("O_NONBLOCK");
            return fd;
        }
        if (errno != ECONNREFUSED || now_ns() > give_up)
            die("connect");
        close(fd);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void send_msg(conn *c, const char *msg, size_t size, int64_t now)
{
    ssize_t n = send(c->fd, msg, size, MSG_NOSIGNAL);
    /* One message is in flight per connection: the socket buffer always
     * has room, so a short send means something is badly wrong. */
    if (n != (ssize_t)size) {
        if (n >= 0)
            errno = EAGAIN;
        die("send");
    }
    c->sent_at = now;
    c->got = 0;
}

/* ---- main --------------------------------------------------------------- */

typedef struct opts {
    int conns, port, pid, cpu;
    size_t size;
    double secs, warm;
} opts;

static void usage(void)
{
    fprintf(stderr, "usage: load [-c CONNS] [-d SECONDS] [-w SECONDS] "
                    "[-s BYTES] [-p SERVER_PID] [-a CPU] PORT\n");
    exit(2);
}

static opts parse_args(int argc, char **argv)
{
    opts o = {.conns = 100, .pid = -1, .cpu = -1, .size = 64, .secs = 5,
              .warm = 1};
    int c;
    while ((c = getopt(argc, argv, "c:d:w:s:p:a:")) != -1) {
        switch (c) {
        case 'c':
            o.conns = (int)parse_num(optarg, 1, MAX_CONNS, "-c");
            break;
        case 'd':
            o.secs = parse_secs(optarg, "-d");
            break;
        case 'w':
            o.warm = parse_secs(optarg, "-w");
            break;
        case 's':
            o.size = (size_t)parse_num(optarg, 1, MAX_MSG, "-s");
            break;
        case 'p':
            o.pid = (int)parse_num(optarg, 1, 1 << 30, "-p");
            break;
        case 'a':
            o.cpu = (int)parse_num(optarg, 0, CPU_SETSIZE - 1, "-a");
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || o.secs <= 0)
        usage();
    o.port = (int)parse_num(argv[optind], 1, 65535, "port");
    return o;
}

typedef struct result {
    uint64_t requests, total;
    int64_t window;
    long long ticks;
} result;

/* Read whatever arrived on `c`; on a whole echo, record it and resend.
 * Returns 1 when a request completed. */
static int on_readable(conn *c, const char *msg, size_t size, int64_t now,
                       int measuring)
{
    char buf[MAX_MSG];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        die("recv");
    }
    if (n == 0) {
        fprintf(stderr, "load: server closed a connection\n");
        exit(1);
    }
    c->got += (uint32_t)n;
    if (c->got < size)
        return 0;
    if (c->got > size) {
        fprintf(stderr, "load: server sent more than was asked\n");
        exit(1);
    }
    if (measuring)
        hist_add((uint64_t)(now - c->sent_at));
    send_msg(c, msg, size, now);
    return 1;
}

static result drive(const opts *o, conn *cs, int ep)
{
    static struct epoll_event evs[MAX_EVENTS];
    char msg[MAX_MSG];
    memset(msg, 'x', o->size);
    result r = {0};
    int64_t start = now_ns();
    int64_t warm_end = start + (int64_t)(o->warm * 1e9);
    int64_t end = warm_end + (int64_t)(o->secs * 1e9);
    int64_t wstart = 0;
    int measuring = 0;
    long long t0 = 0;
    for (int i = 0; i < o->conns; i++)
        send_msg(&cs[i], msg, o->size, start);
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
        if (n == -1 && errno != EINTR)
            die("epoll_wait");
        int64_t now = now_ns();
        if (!measuring && now >= warm_end) {
            measuring = 1;
            wstart = now;
            t0 = o->pid > 0 ? proc_cpu_ticks(o->pid) : 0;
        }
        if (now >= end) {
            r.window = now - wstart;
            if (o->pid > 0) {
                long long t1 = proc_cpu_ticks(o->pid);
                r.ticks = t0 < 0 || t1 < 0 ? -1 : t1 - t0;
            }
            return r;
        }
        for (int i = 0; i < n; i++) {
            int done = on_readable(evs[i].data.ptr, msg, o->size, now,
                                   measuring);
            r.total += (uint64_t)done;
            r.requests += (uint64_t)(done && measuring);
        }
    }
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) == -1)
        die("sched_setaffinity");
}

int main(int argc, char **argv)
{
    opts o = parse_args(argc, argv);
    if (o.cpu >= 0)
        pin(o.cpu);
    conn *cs = calloc((size_t)o.conns, sizeof *cs);
    if (cs == NULL)
        die("calloc");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die("epoll_create1");
    int64_t give_up = now_ns() + CONNECT_WAIT_NS;
    for (int i = 0; i < o.conns; i++) {
        cs[i].fd = dial(o.port, give_up);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) == -1)
            die("epoll_ctl");
    }
    result r = drive(&o, cs, ep);
    for (int i = 0; i < o.conns; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);

    double secs = (double)r.window / 1e9;
    printf("echo.rps %.1f req/s\n", secs > 0 ? (double)r.requests / secs : 0);
    printf("echo.p50_us %.1f us\n", hist_quantile(0.50) / 1e3);
    printf("echo.p99_us %.1f us\n", hist_quantile(0.99) / 1e3);
    printf("echo.requests %llu req\n", (unsigned long long)r.requests);
    printf("echo.total %llu req\n", (unsigned long long)r.total);
    if (o.pid > 0 && r.ticks >= 0 && r.requests > 0) {
        double us = (double)r.ticks * 1e6 / (double)sysconf(_SC_CLK_TCK);
        printf("echo.cpu_us_per_req %.2f us\n", us / (double)r.requests);
    } else if (o.pid > 0) {
        fprintf(stderr, "load: could not read the CPU time of %d\n", o.pid);
        return 1;
    }
    return 0;
}
