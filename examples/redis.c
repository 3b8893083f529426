/* examples/redis.c: what redis.asyncio does, in cio.
 *
 * Commands, a pipeline, a transaction, and pub/sub with a generator (the
 * `async for message in pubsub.listen()` of redis-py), each call under the
 * deadline of one scope. The server is $CIO_TEST_REDIS (host:port) or
 * 127.0.0.1:6379; without a server the example says so and exits 77,
 * which the test suite counts as skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cio.h>
#include <cio/redis.h>

static cio_redis_config cfg;

static int demo(cio_redis *c, cio_redis *sub)
{
    cio_redis_reply *r;
    int rc = cio_redis_cmd(c, NULL, "SET", "greeting", "hi", "EX", "60", NULL);
    if (rc == 0)
        rc = cio_redis_cmd(c, &r, "GET", "greeting", NULL);
    if (rc < 0)
        return rc;
    printf("GET greeting -> %s\n", r->str);
    cio_redis_reply_free(r);

    /* Pipeline: three commands, one write, three replies. */
    static const char *const del[] = {"DEL", "hits"};
    static const char *const incr[] = {"INCRBY", "hits", "10"};
    cio_redis_argv cmds[] = {{2, del, NULL}, {3, incr, NULL}, {3, incr, NULL}};
    cio_redis_reply *reps[3];
    if ((rc = cio_redis_pipeline(c, 3, cmds, reps)) < 0)
        return rc;
    printf("pipeline -> %lld\n", reps[2]->integer);
    for (int i = 0; i < 3; i++)
        cio_redis_reply_free(reps[i]);

    /* MULTI/EXEC: the commands run as one. */
    if ((rc = cio_redis_transaction(c, &r, 2, cmds + 1)) < 0)
        return rc;
    printf("transaction -> %lld\n", r->elem[1]->integer);
    cio_redis_reply_free(r);

    /* Pub/sub: subscribe, publish, read the messages with a generator. */
    const char *chans[] = {"news"}, *words[] = {"hello", "from", "cio"};
    if ((rc = cio_redis_subscribe(sub, 1, chans, false)) < 0)
        return rc;
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = cio_redis_cmd(c, NULL, "PUBLISH", "news", words[i], NULL);
    cio_gen *g;
    if (rc < 0 || (rc = cio_redis_messages(&g, sub)) < 0)
        return rc;
    for (int i = 0; rc == 0 && i < 3; i++) {
        void *m;
        if ((rc = cio_gen_next(g, &m)) == 0)
            printf("message on %s: %s\n", ((cio_redis_message *)m)->channel,
                   ((cio_redis_message *)m)->data);
    }
    cio_gen_free(g);
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    cio_scope sc; /* everything within 5 s */
    int rc = cio_scope_enter(&sc, cio_deadline_after(5 * CIO_SEC), 0);
    cio_redis *c = NULL, *sub = NULL;
    if (rc == 0 && (rc = cio_redis_connect(&c, &cfg)) == -ECONNREFUSED)
        rc = 77;
    if (rc == 0 && (rc = cio_redis_connect(&sub, &cfg)) == 0)
        rc = demo(c, sub);
    cio_redis_close(sub);
    cio_redis_close(c);
    int src = cio_scope_exit(&sc);
    return src < 0 ? src : rc;
}

int main(void)
{
    static char host[64] = "127.0.0.1";
    const char *env = getenv("CIO_TEST_REDIS");
    const char *colon = env ? strrchr(env, ':') : NULL;
    cio_redis_config_init(&cfg);
    if (colon != NULL && (size_t)(colon - env) < sizeof host) {
        snprintf(host, sizeof host, "%.*s", (int)(colon - env), env);
        cfg.port = atoi(colon + 1);
    }
    cfg.host = host;
    int rc = cio_run(run, NULL);
    if (rc == 77)
        printf("redis: no server at %s:%d; skipped\n", host,
               cfg.port ? cfg.port : 6379);
    else if (rc < 0)
        fprintf(stderr, "redis: %s\n", cio_strerror(rc));
    return rc == 77 ? 77 : rc < 0;
}
