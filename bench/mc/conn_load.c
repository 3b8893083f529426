/* conn_load.c: connection-rate load for the echo servers. T threads each
 * loop: connect to 127.0.0.1:PORT, send 64 bytes, read the echo, close.
 * After the warm-up, connections completed during the window are
 * counted. Prints `name value unit` lines:
 *
 *   conn.rate        connections per second (one request each)
 *   conn.cpu_us_per_conn   with -p: the server's utime+stime per connection
 *   conn.errors      failed connections
 *
 * Usage: conn_load [-t THREADS] [-d SECONDS] [-w SECONDS] [-p PID] PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static atomic_long done, errors;
static atomic_int stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* RST on close: no TIME_WAIT pile-up on the client's ports. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    char buf[64] = {0};
    int rc = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, buf, sizeof buf) == (ssize_t)sizeof buf) {
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf && (n = read(fd, buf, sizeof buf)) > 0)
            got += (size_t)n;
        rc = got == sizeof buf ? 0 : -1;
    }
    close(fd);
    return rc;
}

static void *worker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        if (one() == 0)
            atomic_fetch_add(&done, 1);
        else
            atomic_fetch_add(&errors, 1);
    }
    return NULL;
}

static double cpu_s(long pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')');
    unsigned long ut, st;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    int threads = 4, opt;
    double secs = 5, warm = 1;
    long pid = 0;
    while ((opt = getopt(argc, argv, "t:d:w:p:")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'w': warm = atof(optarg); break;
        case 'p': pid = atol(optarg); break;
        default: goto usage;
        }
    }
    if (optind != argc - 1 || threads < 1 || threads > 256 || secs <= 0)
        goto usage;
    port = atoi(argv[optind]);
    pthread_t tid[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, worker, NULL);
    usleep((useconds_t)(warm * 1e6));
    long d0 = atomic_load(&done);
    double c0 = pid ? cpu_s(pid) : 0, t0 = now_s();
    usleep((useconds_t)(secs * 1e6));
    long d1 = atomic_load(&done);
    double c1 = pid ? cpu_s(pid) : 0, t1 = now_s();
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    printf("conn.rate %.1f conn/s\n", (double)(d1 - d0) / (t1 - t0));
    if (pid && d1 > d0)
        printf("conn.cpu_us_per_conn %.2f us\n",
               (c1 - c0) * 1e6 / (double)(d1 - d0));
    printf("conn.errors %ld\n", atomic_load(&errors));
    return 0;
usage:
    fprintf(stderr, "usage: conn_load [-t THREADS] [-d SECONDS] "
                    "[-w SECONDS] [-p PID] PORT\n");
    return 2;
}
