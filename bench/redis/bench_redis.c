/* bench_redis.c: GET or SET throughput of the cio Redis client, the
 * workload of `redis-benchmark -t get|set -c CLIENTS -P DEPTH -n N`:
 * CLIENTS connections, each a task sending DEPTH commands at a time
 * (cio_redis_pipeline; cio_redis_command for depth 1) on the key
 * "key:__rand_int__" with a 3-byte value, until N commands are done.
 *
 * Usage: bench_redis PORT get|set CLIENTS DEPTH N
 * Prints `redis.<op>.p<depth> OPS ops/s` (and the wall time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cio.h>
#include <cio/redis.h>

typedef struct bench {
    int port;
    int set;
    int clients;
    int depth;
    long total;
    long left; /* commands not yet claimed by a client */
} bench;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int client(void *arg)
{
    bench *b = arg;
    cio_redis_config cfg;
    cio_redis_config_init(&cfg);
    cfg.port = b->port;
    cio_redis *c;
    int rc = cio_redis_connect(&c, &cfg);
    if (rc < 0)
        return rc;
    static const char *const set[] = {"SET", "key:__rand_int__", "xxx"};
    static const char *const get[] = {"GET", "key:__rand_int__"};
    cio_redis_argv cmd = {b->set ? 3 : 2, b->set ? set : get, NULL};
    cio_redis_argv cmds[64];
    cio_redis_reply *reps[64];
    for (int i = 0; i < b->depth; i++)
        cmds[i] = cmd;
    while (rc >= 0 && b->left > 0) {
        long n = b->left < b->depth ? b->left : b->depth;
        b->left -= n;
        if (n == 1) {
            rc = cio_redis_command(c, &reps[0], cmd.argc, cmd.argv, NULL);
        } else {
            rc = cio_redis_pipeline(c, (size_t)n, cmds, reps);
        }
        for (long i = 0; rc >= 0 && i < n; i++)
            cio_redis_reply_free(reps[i]);
    }
    cio_redis_close(c);
    return rc;
}

static int run(void *arg)
{
    bench *b = arg;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    for (int i = 0; rc >= 0 && i < b->clients; i++)
        rc = cio_group_spawn(g, NULL, client, b);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    return rc < 0 ? rc : jrc;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_redis PORT get|set CLIENTS DEPTH N\n");
        return 2;
    }
    bench b = {.port = atoi(argv[1]),
               .set = strcmp(argv[2], "set") == 0,
               .clients = atoi(argv[3]),
               .depth = atoi(argv[4]),
               .total = atol(argv[5])};
    if (b.clients < 1 || b.depth < 1 || b.depth > 64 || b.total < 1) {
        fprintf(stderr, "bench_redis: bad arguments\n");
        return 2;
    }
    b.left = b.total;
    int64_t t0 = now_ns();
    int rc = cio_run(run, &b);
    int64_t dt = now_ns() - t0;
    if (rc < 0) {
        fprintf(stderr, "bench_redis: %s\n", cio_strerror(rc));
        return 1;
    }
    printf("redis.%s.p%d %.1f ops/s\n", b.set ? "set" : "get", b.depth,
           (double)b.total * 1e9 / (double)dt);
    printf("redis.%s.p%d.seconds %.3f s\n", b.set ? "set" : "get", b.depth,
           (double)dt / 1e9);
    return 0;
}
