/* The Redis client against a real redis-server (tests/servers.sh starts
 * one; without it these tests skip). Each test uses keys of its own. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cio/redis.h>

#include "internal.h"
#include "test.h"

/* Keys and channels of this test process: "t<pid>:name", so that the
 * runs of this file on both backends (in parallel under ctest -j) and
 * other clients of the shared server never meet. Interned, so a pointer
 * stays valid for the whole test. */
static const char *K(const char *name)
{
    static struct {
        const char *name;
        char *key;
    } tab[128];
    static int n;
    for (int i = 0; i < n; i++)
        if (strcmp(tab[i].name, name) == 0)
            return tab[i].key;
    if (n == 128)
        abort();
    size_t len = strlen(name) + 32;
    tab[n].name = name;
    tab[n].key = malloc(len);
    snprintf(tab[n].key, len, "t%ld:%s", (long)getpid(), name);
    return tab[n++].key;
}

static int config_from(cio_redis_config *cfg, const char *addr)
{
    static char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    cio_redis_config_init(cfg);
    cfg->host = host;
    cfg->port = atoi(colon + 1);
    return 0;
}

static int connect_to(cio_redis **c, const char *addr, int protocol)
{
    cio_redis_config cfg;
    int rc = config_from(&cfg, addr);
    if (rc < 0)
        return rc;
    cfg.protocol = protocol;
    return cio_redis_connect(c, &cfg);
}

static int del(cio_redis *c, const char *key)
{
    return cio_redis_cmd(c, NULL, "DEL", key, NULL);
}

TEST_REALTIME(redis_strings_lists_hashes)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c;
    ASSERT_OK(connect_to(&c, addr, 2));
    ASSERT_EQ(2, cio_redis_protocol(c));
    ASSERT_OK(del(c, K("str")));
    /* Binary-safe values and keys. */
    const char *set[] = {"SET", K("str"), "a\0b\r\nc"};
    size_t setlen[] = {3, strlen(K("str")), 6};
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_command(c, &r, 3, set, setlen));
    ASSERT_EQ(CIO_REDIS_STATUS, r->type);
    ASSERT_STR_EQ("OK", r->str);
    cio_redis_reply_free(r);
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", K("str"), NULL));
    ASSERT_EQ(CIO_REDIS_STRING, r->type);
    ASSERT_EQ(6, r->len);
    ASSERT_TRUE(memcmp(r->str, "a\0b\r\nc", 6) == 0);
    cio_redis_reply_free(r);
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", K("nokey"), NULL));
    ASSERT_EQ(CIO_REDIS_NIL, r->type);
    cio_redis_reply_free(r);
    /* Integers. */
    ASSERT_OK(del(c, K("n")));
    for (int i = 1; i <= 3; i++) {
        ASSERT_OK(cio_redis_cmd(c, &r, "INCR", K("n"), NULL));
        ASSERT_EQ(CIO_REDIS_INTEGER, r->type);
        ASSERT_EQ(i, r->integer);
        cio_redis_reply_free(r);
    }
    /* Lists. */
    ASSERT_OK(del(c, K("list")));
    ASSERT_OK(cio_redis_cmd(c, NULL, "RPUSH", K("list"), "a", "b", "c", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "LRANGE", K("list"), "0", "-1", NULL));
    ASSERT_EQ(CIO_REDIS_ARRAY, r->type);
    ASSERT_EQ(3, r->len);
    ASSERT_STR_EQ("a", r->elem[0]->str);
    ASSERT_STR_EQ("c", r->elem[2]->str);
    cio_redis_reply_free(r);
    /* Hashes: a flat array in RESP2. */
    ASSERT_OK(del(c, K("h")));
    ASSERT_OK(cio_redis_cmd(c, NULL, "HSET", K("h"), "f", "v", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "HGETALL", K("h"), NULL));
    ASSERT_EQ(CIO_REDIS_ARRAY, r->type);
    ASSERT_EQ(2, r->len);
    ASSERT_STR_EQ("v", r->elem[1]->str);
    cio_redis_reply_free(r);
    /* A large value, bigger than the stream's buffer. */
    size_t big = 3 * 1024 * 1024 + 7;
    char *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)(i * 31 + 7);
    const char *bset[] = {"SET", K("big"), v};
    size_t blen[] = {3, strlen(K("big")), big};
    ASSERT_OK(cio_redis_command(c, &r, 3, bset, blen));
    cio_redis_reply_free(r);
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", K("big"), NULL));
    ASSERT_EQ(big, r->len);
    ASSERT_TRUE(memcmp(r->str, v, big) == 0);
    cio_redis_reply_free(r);
    free(v);
    ASSERT_EQ(0, cio_redis_pending(c));
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_error_reply_is_eserver_with_message)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c;
    ASSERT_OK(connect_to(&c, addr, 2));
    ASSERT_OK(cio_redis_cmd(c, NULL, "SET", K("err"), "notanumber", NULL));
    cio_redis_reply *r;
    ASSERT_EQ(CIO_ESERVER, cio_redis_cmd(c, &r, "INCR", K("err"), NULL));
    ASSERT_EQ(CIO_REDIS_ERROR, r->type);
    ASSERT_TRUE(strncmp(r->str, "ERR ", 4) == 0);
    cio_redis_reply_free(r);
    ASSERT_EQ(CIO_ESERVER, cio_redis_cmd(c, &r, "NOSUCHCOMMAND", NULL));
    ASSERT_TRUE(strstr(r->str, "unknown command") != NULL);
    cio_redis_reply_free(r);
    /* Bad arguments are refused before anything is sent. */
    ASSERT_EQ(-EINVAL, cio_redis_command(c, &r, 0, NULL, NULL));
    ASSERT_TRUE(r == NULL);
    /* So are commands that would answer with more or fewer replies. */
    ASSERT_EQ(-EINVAL, cio_redis_cmd(c, &r, "subscribe", "a", "b", NULL));
    ASSERT_EQ(-EINVAL, cio_redis_cmd(c, &r, "CLIENT", "reply", "off", NULL));
    ASSERT_EQ(-EINVAL, cio_redis_cmd(c, &r, "MONITOR", NULL));
    /* The connection is still in step. */
    ASSERT_OK(cio_redis_cmd(c, &r, "PING", NULL));
    ASSERT_STR_EQ("PONG", r->str);
    cio_redis_reply_free(r);
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_pipeline_1000_commands)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c;
    ASSERT_OK(connect_to(&c, addr, 2));
    ASSERT_OK(del(c, K("pipe")));
    enum { N = 1000 };
    const char *const incr[] = {"INCR", K("pipe")};
    cio_redis_argv *cmds = malloc(N * sizeof *cmds);
    cio_redis_reply **reps = malloc(N * sizeof *reps);
    for (int i = 0; i < N; i++)
        cmds[i] = (cio_redis_argv){2, incr, NULL};
    /* An error reply in the middle is just that command's reply. */
    const char *const bad[] = {"HGET", K("pipe"), "f"};
    cmds[500] = (cio_redis_argv){3, bad, NULL};
    ASSERT_OK(cio_redis_pipeline(c, N, cmds, reps));
    long long want = 1;
    for (int i = 0; i < N; i++) {
        if (i == 500) {
            ASSERT_EQ(CIO_REDIS_ERROR, reps[i]->type);
        } else {
            ASSERT_EQ(CIO_REDIS_INTEGER, reps[i]->type);
            ASSERT_EQ(want++, reps[i]->integer);
        }
        cio_redis_reply_free(reps[i]);
    }
    free(cmds);
    free(reps);
    ASSERT_EQ(0, cio_redis_pending(c));
    cio_redis_close(c);
    return 0;
}

typedef struct shared {
    cio_redis *c;
    int id;
    int errors;
} shared;

static int sharer(void *arg)
{
    shared *s = arg;
    char key[32], val[32];
    snprintf(key, sizeof key, "%sshare:%d", K(""), s->id);
    for (int i = 0; i < 20; i++) {
        snprintf(val, sizeof val, "%d-%d", s->id, i);
        cio_redis_reply *r;
        int rc = cio_redis_cmd(s->c, &r, "SET", key, val, NULL);
        cio_redis_reply_free(r);
        if (rc < 0)
            return rc;
        rc = cio_redis_cmd(s->c, &r, "GET", key, NULL);
        if (rc < 0)
            return rc;
        if (r->type != CIO_REDIS_STRING || strcmp(r->str, val) != 0)
            s->errors++;
        cio_redis_reply_free(r);
    }
    return 0;
}

TEST_REALTIME(redis_tasks_share_one_connection)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c;
    ASSERT_OK(connect_to(&c, addr, 2));
    enum { T = 50 };
    shared sh[T];
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < T; i++) {
        sh[i] = (shared){c, i, 0};
        ASSERT_OK(cio_group_spawn(g, NULL, sharer, &sh[i]));
    }
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    for (int i = 0; i < T; i++)
        ASSERT_EQ(0, sh[i].errors);
    ASSERT_EQ(0, cio_redis_pending(c));
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_transaction_and_watch_abort)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c, *other;
    ASSERT_OK(connect_to(&c, addr, 2));
    ASSERT_OK(connect_to(&other, addr, 2));
    ASSERT_OK(del(c, K("tx")));
    const char *const set[] = {"SET", K("tx"), "10"};
    const char *const incr[] = {"INCRBY", K("tx"), "5"};
    const char *const get[] = {"GET", K("tx")};
    cio_redis_argv cmds[] = {{3, set, NULL}, {3, incr, NULL}, {2, get, NULL}};
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_transaction(c, &r, 3, cmds));
    ASSERT_EQ(CIO_REDIS_ARRAY, r->type);
    ASSERT_EQ(3, r->len);
    ASSERT_STR_EQ("OK", r->elem[0]->str);
    ASSERT_EQ(15, r->elem[1]->integer);
    ASSERT_STR_EQ("15", r->elem[2]->str);
    cio_redis_reply_free(r);
    /* WATCH, a change by another client, EXEC: aborted, nothing ran. */
    const char *keys[] = {K("tx")};
    ASSERT_OK(cio_redis_watch(c, 1, keys));
    ASSERT_OK(cio_redis_cmd(other, NULL, "SET", K("tx"), "99", NULL));
    ASSERT_EQ(-EAGAIN, cio_redis_transaction(c, &r, 3, cmds));
    ASSERT_TRUE(r == NULL);
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", K("tx"), NULL));
    ASSERT_STR_EQ("99", r->str);
    cio_redis_reply_free(r);
    /* WATCH then UNWATCH: the transaction runs. */
    ASSERT_OK(cio_redis_watch(c, 1, keys));
    ASSERT_OK(cio_redis_unwatch(c));
    ASSERT_OK(cio_redis_cmd(other, NULL, "SET", K("tx"), "1", NULL));
    ASSERT_OK(cio_redis_transaction(c, &r, 3, cmds));
    cio_redis_reply_free(r);
    /* A command refused while queueing aborts the whole transaction. */
    static const char *const arity[] = {"GET"};
    cio_redis_argv bad[] = {{3, set, NULL}, {1, arity, NULL}};
    ASSERT_EQ(CIO_ESERVER, cio_redis_transaction(c, &r, 2, bad));
    ASSERT_EQ(CIO_REDIS_ERROR, r->type);
    ASSERT_TRUE(strncmp(r->str, "EXECABORT", 9) == 0);
    cio_redis_reply_free(r);
    /* A run-time error is one element of the result. */
    const char *const hget[] = {"HGET", K("tx"), "f"};
    cio_redis_argv mixed[] = {{2, get, NULL}, {3, hget, NULL}};
    ASSERT_OK(cio_redis_transaction(c, &r, 2, mixed));
    ASSERT_EQ(CIO_REDIS_STRING, r->elem[0]->type);
    ASSERT_EQ(CIO_REDIS_ERROR, r->elem[1]->type);
    cio_redis_reply_free(r);
    cio_redis_close(other);
    cio_redis_close(c);
    return 0;
}

static int pubsub_check(const char *addr, int protocol)
{
    cio_redis *sub, *pub;
    ASSERT_OK(connect_to(&sub, addr, protocol));
    ASSERT_OK(connect_to(&pub, addr, protocol));
    const char *chans[] = {K("chan:a"), K("chan:b")};
    ASSERT_OK(cio_redis_subscribe(sub, 2, chans, false));
    const char *pats[] = {K("pat:*")};
    ASSERT_OK(cio_redis_subscribe(sub, 1, pats, true));
    /* A subscriber refuses ordinary commands. */
    ASSERT_EQ(-EBUSY, cio_redis_cmd(sub, NULL, "PING", NULL));
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(pub, &r, "PUBLISH", K("chan:b"), "hello", NULL));
    ASSERT_EQ(1, r->integer);
    cio_redis_reply_free(r);
    ASSERT_OK(cio_redis_cmd(pub, NULL, "PUBLISH", K("pat:x"), "w\0rld", NULL));
    cio_redis_message *m;
    ASSERT_OK(cio_redis_next_message(sub, &m, cio_deadline_after(CIO_SEC)));
    ASSERT_EQ(CIO_REDIS_MESSAGE, m->kind);
    ASSERT_STR_EQ(K("chan:b"), m->channel);
    ASSERT_EQ(5, m->data_len);
    ASSERT_STR_EQ("hello", m->data);
    ASSERT_TRUE(m->pattern == NULL);
    cio_redis_message_free(m);
    ASSERT_OK(cio_redis_next_message(sub, &m, cio_deadline_after(CIO_SEC)));
    ASSERT_EQ(CIO_REDIS_PMESSAGE, m->kind);
    ASSERT_STR_EQ(K("pat:*"), m->pattern);
    ASSERT_STR_EQ(K("pat:x"), m->channel);
    ASSERT_EQ(1, m->data_len); /* C-string argument: up to the NUL */
    cio_redis_message_free(m);
    /* Nothing more: the deadline ends the wait. */
    ASSERT_EQ(-ETIMEDOUT, cio_redis_next_message(
                              sub, &m, cio_deadline_after(50 * CIO_MSEC)));
    /* Unsubscribe from everything: back to an ordinary connection. */
    ASSERT_OK(cio_redis_unsubscribe(sub, 0, NULL, false));
    ASSERT_OK(cio_redis_unsubscribe(sub, 0, NULL, true));
    ASSERT_EQ(-ENOTCONN, cio_redis_next_message(sub, &m, CIO_NEVER));
    ASSERT_OK(cio_redis_cmd(sub, &r, "PING", NULL));
    ASSERT_STR_EQ("PONG", r->str);
    cio_redis_reply_free(r);
    cio_redis_close(pub);
    cio_redis_close(sub);
    return 0;
}

TEST_REALTIME(redis_pubsub_between_two_connections)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    return pubsub_check(addr, 2);
}

TEST_REALTIME(redis_pubsub_resp3)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    return pubsub_check(addr, 3);
}

typedef struct publisher {
    const char *addr;
    int n;
} publisher;

static int publish_n(void *arg)
{
    publisher *p = arg;
    cio_redis *c;
    int rc = connect_to(&c, p->addr, 2);
    if (rc < 0)
        return rc;
    for (int i = 0; rc >= 0 && i < p->n; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        rc = cio_redis_cmd(c, NULL, "PUBLISH", K("gen"), v, NULL);
    }
    cio_redis_close(c);
    return rc < 0 ? rc : 0;
}

TEST_REALTIME(redis_pubsub_generator)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *sub;
    ASSERT_OK(connect_to(&sub, addr, 2));
    const char *chans[] = {K("gen")};
    ASSERT_OK(cio_redis_subscribe(sub, 1, chans, false));
    cio_gen *g;
    ASSERT_OK(cio_redis_messages(&g, sub));
    publisher p = {addr, 10};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, publish_n, &p));
    for (int i = 0; i < 10; i++) {
        void *v;
        ASSERT_OK(cio_gen_next(g, &v));
        cio_redis_message *m = v;
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        ASSERT_STR_EQ(want, m->data);
    }
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    /* Closing the generator mid-wait leaves the connection usable. */
    ASSERT_OK(cio_gen_close(g));
    cio_gen_free(g);
    ASSERT_OK(cio_redis_unsubscribe(sub, 0, NULL, false));
    cio_redis_close(sub);
    return 0;
}

TEST_REALTIME(redis_resp3_hello_maps_and_types)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c;
    ASSERT_OK(connect_to(&c, addr, 3));
    ASSERT_EQ(3, cio_redis_protocol(c));
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(c, &r, "HELLO", "3", NULL));
    ASSERT_EQ(CIO_REDIS_MAP, r->type);
    bool found = false;
    for (size_t i = 0; i + 1 < r->len; i += 2)
        if (strcmp(r->elem[i]->str, "proto") == 0) {
            ASSERT_EQ(3, r->elem[i + 1]->integer);
            found = true;
        }
    ASSERT_TRUE(found);
    cio_redis_reply_free(r);
    ASSERT_OK(del(c, K("h3")));
    ASSERT_OK(
        cio_redis_cmd(c, NULL, "HSET", K("h3"), "a", "1", "b", "2", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "HGETALL", K("h3"), NULL));
    ASSERT_EQ(CIO_REDIS_MAP, r->type);
    ASSERT_EQ(4, r->len);
    cio_redis_reply_free(r);
    ASSERT_OK(del(c, K("z3")));
    ASSERT_OK(cio_redis_cmd(c, NULL, "ZADD", K("z3"), "1.5", "m", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "ZSCORE", K("z3"), "m", NULL));
    ASSERT_EQ(CIO_REDIS_DOUBLE, r->type);
    ASSERT_TRUE(r->dval == 1.5);
    cio_redis_reply_free(r);
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", K("none3"), NULL));
    ASSERT_EQ(CIO_REDIS_NIL, r->type);
    cio_redis_reply_free(r);
    ASSERT_EQ(CIO_ESERVER, cio_redis_cmd(c, &r, "SMEMBERS", K("h3"), NULL));
    ASSERT_TRUE(strncmp(r->str, "WRONGTYPE", 9) == 0);
    cio_redis_reply_free(r); /* an error, and still in step */
    ASSERT_OK(cio_redis_cmd(c, NULL, "SADD", K("s3"), "x", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "SMEMBERS", K("s3"), NULL));
    ASSERT_EQ(CIO_REDIS_SET, r->type);
    cio_redis_reply_free(r);
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_blpop_deadline_then_connection_in_step)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c, *other;
    ASSERT_OK(connect_to(&c, addr, 2));
    ASSERT_OK(connect_to(&other, addr, 2));
    ASSERT_OK(del(c, K("bl")));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    cio_redis_reply *r;
    ASSERT_EQ(-ECANCELED, cio_redis_cmd(c, &r, "BLPOP", K("bl"), "0", NULL));
    ASSERT_TRUE(r == NULL);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    /* The BLPOP is still owed; its reply, when it comes, is dropped and
     * the next command gets its own reply. */
    ASSERT_EQ(1, cio_redis_pending(c));
    ASSERT_OK(cio_redis_cmd(other, NULL, "RPUSH", K("bl"), "x", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "ECHO", "mine", NULL));
    ASSERT_STR_EQ("mine", r->str);
    cio_redis_reply_free(r);
    ASSERT_EQ(0, cio_redis_pending(c));
    /* command_timeout does the same per command, as -ETIMEDOUT. */
    cio_redis *t;
    cio_redis_config cfg;
    ASSERT_OK(config_from(&cfg, addr));
    cfg.command_timeout = 50 * CIO_MSEC;
    ASSERT_OK(cio_redis_connect(&t, &cfg));
    ASSERT_EQ(-ETIMEDOUT, cio_redis_cmd(t, &r, "BLPOP", K("bl"), "0", NULL));
    ASSERT_OK(cio_redis_cmd(other, NULL, "RPUSH", K("bl"), "y", NULL));
    ASSERT_OK(cio_redis_cmd(t, &r, "ECHO", "again", NULL));
    ASSERT_STR_EQ("again", r->str);
    cio_redis_reply_free(r);
    cio_redis_close(t);
    cio_redis_close(other);
    cio_redis_close(c);
    return 0;
}

typedef struct blocker {
    cio_redis *c;
    int rc;
} blocker;

static int blpop_task(void *arg)
{
    blocker *b = arg;
    cio_redis_reply *r;
    b->rc = cio_redis_cmd(b->c, &r, "BLPOP", K("cancel"), "0", NULL);
    cio_redis_reply_free(r);
    return b->rc;
}

static int echo_task(void *arg)
{
    blocker *b = arg;
    cio_redis_reply *r;
    b->rc = cio_redis_cmd(b->c, &r, "ECHO", "behind", NULL);
    if (b->rc == 0 && strcmp(r->str, "behind") != 0)
        b->rc = -EPROTO;
    cio_redis_reply_free(r);
    return b->rc;
}

TEST_REALTIME(redis_cancel_mid_command_keeps_connection)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c, *other;
    ASSERT_OK(connect_to(&c, addr, 2));
    ASSERT_OK(connect_to(&other, addr, 2));
    ASSERT_OK(del(c, K("cancel")));
    /* A reader blocked in BLPOP, and a task queued behind it. */
    blocker b1 = {c, 1}, b2 = {c, 1};
    cio_task *t1, *t2;
    ASSERT_OK(cio_spawn(&t1, blpop_task, &b1));
    ASSERT_OK(cio_spawn(&t2, echo_task, &b2));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_EQ(2, cio_redis_pending(c));
    /* Cancel the reader: the one behind takes over reading. */
    ASSERT_OK(cio_task_cancel(t1));
    ASSERT_EQ(-ECANCELED, cio_task_join(t1));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_TRUE(!cio_task_done(t2));
    ASSERT_OK(cio_redis_cmd(other, NULL, "RPUSH", K("cancel"), "v", NULL));
    ASSERT_OK(cio_task_join(t2));
    cio_task_free(t1);
    cio_task_free(t2);
    ASSERT_EQ(0, cio_redis_pending(c));
    /* The list item went to the cancelled BLPOP (the server ran it). */
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(c, &r, "LLEN", K("cancel"), NULL));
    ASSERT_EQ(0, r->integer);
    cio_redis_reply_free(r);
    cio_redis_close(other);
    cio_redis_close(c);
    return 0;
}

typedef struct pool_user {
    cio_redis_pool *pool;
    int max_seen;
} pool_user;

static int pool_worker(void *arg)
{
    pool_user *u = arg;
    cio_redis *c;
    int rc = cio_redis_pool_acquire(u->pool, &c);
    if (rc < 0)
        return rc;
    cio_redis_reply *r;
    rc = cio_redis_cmd(c, &r, "INCR", K("pool"), NULL);
    cio_redis_reply_free(r);
    cio_pool_stats st;
    cio_redis_pool_stats(u->pool, &st);
    if ((int)st.size > u->max_seen)
        u->max_seen = (int)st.size;
    if (rc == 0)
        rc = cio_sleep(CIO_MSEC);
    cio_redis_pool_release(u->pool, c, rc < 0);
    return rc;
}

TEST_REALTIME(redis_pool_under_contention)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis_config cfg;
    ASSERT_OK(config_from(&cfg, addr));
    cio_pool_config pc = {.max_size = 5};
    cio_redis_pool *pool;
    ASSERT_OK(cio_redis_pool_create(&pool, &cfg, &pc));
    cio_redis *c;
    ASSERT_OK(cio_redis_pool_acquire(pool, &c));
    ASSERT_OK(del(c, K("pool")));
    ASSERT_OK(cio_redis_pool_release(pool, c, false));
    pool_user u = {pool, 0};
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cio_group_spawn(g, NULL, pool_worker, &u));
    ASSERT_OK(cio_group_join(g));
    cio_group_free(g);
    ASSERT_TRUE(u.max_seen <= 5);
    cio_pool_stats st;
    ASSERT_OK(cio_redis_pool_stats(pool, &st));
    ASSERT_EQ(101, st.acquired);
    ASSERT_TRUE(st.opened <= 5);
    ASSERT_OK(cio_redis_pool_acquire(pool, &c));
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", K("pool"), NULL));
    ASSERT_STR_EQ("100", r->str);
    cio_redis_reply_free(r);
    /* A connection that still owes a reply is not reused. */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(20 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_redis_cmd(c, NULL, "BLPOP", K("pl"), "0", NULL));
    cio_scope_exit(&sc);
    ASSERT_OK(cio_redis_pool_release(pool, c, false));
    ASSERT_OK(cio_redis_pool_stats(pool, &st));
    ASSERT_EQ(1, st.discarded);
    ASSERT_OK(cio_redis_pool_close(pool));
    return 0;
}

/* ---- a server of our own, killed and restarted --------------------------- */

static int free_port(void)
{
    int fd;
    cio_addr a;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_listen(&fd, &a, 1, 0);
    if (rc < 0)
        return rc;
    socklen_t len = sizeof a.u;
    getsockname(fd, &a.u.sa, &len);
    a.len = len;
    rc = cio_addr_port(&a);
    cio_close(fd);
    return rc;
}

static int start_server(cio_process **p, const char *bin, int port)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    char *argv[] = {(char *)"redis-server",
                    (char *)"--port",
                    ps,
                    (char *)"--bind",
                    (char *)"127.0.0.1",
                    (char *)"--save",
                    (char *)"",
                    (char *)"--appendonly",
                    (char *)"no",
                    (char *)"--dir",
                    (char *)"/tmp",
                    NULL};
    cio_process_opts o = {.stdin_mode = CIO_PROC_DEVNULL,
                          .stdout_mode = CIO_PROC_DEVNULL,
                          .stderr_mode = CIO_PROC_DEVNULL};
    return cio_process_spawn(p, bin, argv, &o);
}

/* Connect, retrying while the server starts (up to 5 s). */
static int connect_retry(cio_redis **c, cio_redis_config *cfg)
{
    int rc = -ECONNREFUSED;
    for (int i = 0; i < 250 && rc == -ECONNREFUSED; i++) {
        rc = cio_redis_connect(c, cfg);
        if (rc == -ECONNREFUSED)
            cio_sleep(20 * CIO_MSEC);
    }
    return rc;
}

static int stop_server(cio_process *p)
{
    int st;
    cio_process_kill(p, SIGKILL);
    int rc = cio_process_wait(p, &st);
    cio_process_free(p);
    return rc;
}

TEST_REALTIME(redis_server_restart_mid_use)
{
    TEST_SERVER("CIO_TEST_REDIS");
    const char *bin = getenv("CIO_TEST_REDIS_SERVER");
    if (bin == NULL)
        return 0;
    int port = free_port();
    ASSERT_TRUE(port > 0);
    cio_process *srv;
    ASSERT_OK(start_server(&srv, bin, port));
    cio_redis_config cfg;
    cio_redis_config_init(&cfg);
    cfg.port = port;
    cfg.db = 2;
    cio_redis *c;
    ASSERT_OK(connect_retry(&c, &cfg));
    ASSERT_OK(cio_redis_cmd(c, NULL, "SET", "k", "v", NULL));
    /* A command in flight when the server dies reports the failure. */
    blocker b = {c, 1};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, blpop_task, &b));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(stop_server(srv));
    ASSERT_EQ(-ECONNRESET, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRUE(!cio_redis_connected(c));
    /* While it is down, a command fails to reconnect. */
    cio_redis_reply *r;
    ASSERT_EQ(-ECONNREFUSED, cio_redis_cmd(c, &r, "PING", NULL));
    /* Back on the same port: the next command reconnects (SELECT 2
     * again: the key set before is gone with the old server's memory). */
    ASSERT_OK(start_server(&srv, bin, port));
    int rc = -ECONNREFUSED;
    for (int i = 0; i < 250 && rc == -ECONNREFUSED; i++) {
        rc = cio_redis_cmd(c, &r, "PING", NULL);
        if (rc == -ECONNREFUSED)
            cio_sleep(20 * CIO_MSEC);
    }
    ASSERT_OK(rc);
    ASSERT_STR_EQ("PONG", r->str);
    cio_redis_reply_free(r);
    ASSERT_OK(cio_redis_cmd(c, NULL, "SET", "k2", "v2", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "CLIENT", "INFO", NULL));
    ASSERT_TRUE(strstr(r->str, " db=2 ") != NULL);
    cio_redis_reply_free(r);
    /* An idle connection the server closed is replaced before use. */
    ASSERT_OK(cio_redis_cmd(c, &r, "CLIENT", "ID", NULL));
    char id[32];
    snprintf(id, sizeof id, "%lld", r->integer);
    cio_redis_reply_free(r);
    cio_redis *killer;
    ASSERT_OK(cio_redis_connect(&killer, &cfg));
    ASSERT_OK(cio_redis_cmd(killer, &r, "CLIENT", "KILL", "ID", id, NULL));
    ASSERT_EQ(1, r->integer);
    cio_redis_reply_free(r);
    /* Until the server has freed (and so closed) it... */
    size_t listed = 1;
    for (int i = 0; i < 500 && listed > 0; i++) {
        ASSERT_OK(cio_redis_cmd(killer, &r, "CLIENT", "LIST", "ID", id, NULL));
        listed = r->len;
        cio_redis_reply_free(r);
        if (listed > 0)
            ASSERT_OK(cio_sleep(CIO_MSEC));
    }
    ASSERT_EQ(0, listed);
    cio_redis_close(killer);
    /* ...and past the idle time after which the client checks. */
    ASSERT_OK(cio_sleep(2 * CIO_MSEC));
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", "k2", NULL));
    ASSERT_STR_EQ("v2", r->str);
    cio_redis_reply_free(r);
    /* A subscriber sees the failure once, then reconnects and subscribes
     * again on its next wait. */
    cio_redis *sub;
    ASSERT_OK(cio_redis_connect(&sub, &cfg));
    const char *chans[] = {K("re")};
    ASSERT_OK(cio_redis_subscribe(sub, 1, chans, false));
    ASSERT_OK(stop_server(srv));
    cio_redis_message *m;
    /* The reset, or (when the idle check saw it first) the refused
     * reconnect. */
    rc = cio_redis_next_message(sub, &m, CIO_NEVER);
    ASSERT_TRUE(rc == -ECONNRESET || rc == -ECONNREFUSED);
    ASSERT_OK(start_server(&srv, bin, port));
    long long receivers = 0;
    for (int i = 0; i < 500 && receivers == 0; i++) {
        /* A wait reconnects and subscribes again while it is not; the
         * server counts the subscriber once it has done so. */
        rc = cio_redis_next_message(sub, &m, cio_deadline_after(10 * CIO_MSEC));
        ASSERT_TRUE(rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
                    rc == -ECONNRESET);
        if (rc == -ECONNREFUSED)
            ASSERT_OK(cio_sleep(10 * CIO_MSEC));
        rc = cio_redis_cmd(c, &r, "PUBLISH", K("re"), "back", NULL);
        if (rc == 0)
            receivers = r->integer;
        cio_redis_reply_free(r);
    }
    ASSERT_EQ(1, receivers);
    ASSERT_OK(cio_redis_next_message(sub, &m, cio_deadline_after(CIO_SEC)));
    ASSERT_STR_EQ("back", m->data);
    cio_redis_message_free(m);
    cio_redis_close(sub);
    cio_redis_close(c);
    /* no_reconnect: the connection stays down. */
    cfg.no_reconnect = true;
    ASSERT_OK(connect_retry(&c, &cfg));
    b.c = c;
    ASSERT_OK(cio_spawn(&t, blpop_task, &b));
    ASSERT_OK(cio_wait_all_blocked());
    ASSERT_OK(stop_server(srv));
    ASSERT_EQ(-ECONNRESET, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-ENOTCONN, cio_redis_cmd(c, &r, "PING", NULL));
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_connect_errors)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis_config cfg;
    ASSERT_OK(config_from(&cfg, addr));
    cio_redis *c = NULL;
    /* AUTH on a server without a password: refused in the handshake. */
    cfg.password = "secret";
    ASSERT_EQ(CIO_ESERVER, cio_redis_connect(&c, &cfg));
    cfg.password = NULL;
    cfg.protocol = 4;
    ASSERT_EQ(-EINVAL, cio_redis_connect(&c, &cfg));
    cfg.protocol = 2;
    cfg.db = 100000; /* out of range for the server */
    ASSERT_EQ(CIO_ESERVER, cio_redis_connect(&c, &cfg));
    cfg.db = 0;
    /* A name is looked up (.invalid never resolves), within a deadline. */
    cfg.host = "no-such-host.invalid";
    cio_scope dsc;
    ASSERT_OK(cio_scope_enter(&dsc, cio_deadline_after(10 * CIO_SEC), 0));
    int nrc = cio_redis_connect(&c, &cfg);
    cio_scope_exit(&dsc);
    ASSERT_TRUE(nrc == CIO_ENOTFOUND || nrc == CIO_EDNS ||
                nrc == -ETIMEDOUT || nrc == -ECANCELED);
    ASSERT_TRUE(c == NULL);
    int port = free_port();
    ASSERT_TRUE(port > 0);
    cfg.host = NULL;
    cfg.port = port;
    ASSERT_EQ(-ECONNREFUSED, cio_redis_connect(&c, &cfg));
    ASSERT_TRUE(c == NULL);
    ASSERT_EQ(-EINVAL, cio_redis_connect(NULL, &cfg));
    return 0;
}

TEST_REALTIME(redis_connect_timeout_on_silent_server)
{
    TEST_SERVER("CIO_TEST_REDIS");
    /* A listener that never answers: the handshake (SELECT) times out. */
    int lfd;
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    ASSERT_OK(cio_listen(&lfd, &a, 4, 0));
    socklen_t len = sizeof a.u;
    getsockname(lfd, &a.u.sa, &len);
    cio_redis_config cfg;
    cio_redis_config_init(&cfg);
    cfg.port = cio_addr_port(&a);
    cfg.db = 1;
    cfg.connect_timeout = 50 * CIO_MSEC;
    cio_redis *c;
    ASSERT_EQ(-ETIMEDOUT, cio_redis_connect(&c, &cfg));
    cio_close(lfd);
    return 0;
}

/* ---- a scripted fake server: malformed and cut replies ------------------- */

typedef struct fake {
    const char *const *answers; /* one per connection; the last repeats */
    int n;
    int conns;
} fake;

static int fake_conn(cio_stream *s, void *arg)
{
    fake *f = arg;
    const char *ans = f->answers[f->conns < f->n ? f->conns : f->n - 1];
    f->conns++;
    char buf[512];
    for (;;) {
        /* One command per read: the client here sends one at a time. */
        ssize_t n = cio_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            return 0;
        int rc = cio_stream_write(s, ans, strlen(ans));
        if (rc == 0)
            rc = cio_stream_flush(s);
        if (rc < 0 || strncmp(ans, "$10\r\n", 5) == 0)
            return 0; /* a cut reply: close after it */
    }
}

static int fake_start(cio_server **srv, fake *f, cio_redis_config *cfg)
{
    cio_addr a;
    int rc = cio_addr_ip(&a, "127.0.0.1", 0);
    if (rc == 0)
        rc = cio_server_start(srv, &a, fake_conn, f, NULL);
    if (rc < 0)
        return rc;
    cio_redis_config_init(cfg);
    cfg->port = cio_addr_port(cio_server_addr(*srv));
    return 0;
}

TEST_REALTIME(redis_bad_server_replies_are_errors_then_reconnect)
{
    static const char *const answers[] = {
        "$10\r\nabc",         /* cut by the server closing */
        "?what\r\n",          /* not RESP */
        "$999999\r\n",        /* over the configured max_bulk */
        "*2\r\n*2\r\n*2\r\n", /* nested deeper than max_depth */
        "+OK\r\n",
    };
    fake f = {answers, 5, 0};
    cio_server *srv;
    cio_redis_config cfg;
    ASSERT_OK(fake_start(&srv, &f, &cfg));
    cfg.limits.max_bulk = 100;
    cfg.limits.max_depth = 2;
    cio_redis *c;
    ASSERT_OK(cio_redis_connect(&c, &cfg));
    cio_redis_reply *r;
    ASSERT_EQ(-ECONNRESET, cio_redis_cmd(c, &r, "GET", "k", NULL));
    ASSERT_TRUE(r == NULL);
    ASSERT_TRUE(!cio_redis_connected(c));
    ASSERT_EQ(CIO_EBADRESP, cio_redis_cmd(c, &r, "GET", "k", NULL));
    ASSERT_EQ(CIO_EBADRESP, cio_redis_cmd(c, &r, "GET", "k", NULL));
    ASSERT_EQ(CIO_EBADRESP, cio_redis_cmd(c, &r, "GET", "k", NULL));
    ASSERT_OK(cio_redis_cmd(c, &r, "GET", "k", NULL));
    ASSERT_STR_EQ("OK", r->str);
    cio_redis_reply_free(r);
    ASSERT_EQ(5, f.conns);
    cio_redis_close(c);
    ASSERT_OK(cio_server_close(srv, 0));
    return 0;
}

static int pushes;

static void count_push(const cio_redis_reply *push, void *arg)
{
    (void)arg;
    if (push->type == CIO_REDIS_PUSH && push->len >= 1 &&
        strcmp(push->elem[0]->str, "invalidate") == 0)
        pushes++;
}

TEST_REALTIME(redis_resp3_push_goes_to_on_push)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis_config cfg;
    ASSERT_OK(config_from(&cfg, addr));
    cfg.protocol = 3;
    cfg.on_push = count_push;
    cio_redis *c, *other;
    ASSERT_OK(cio_redis_connect(&c, &cfg));
    ASSERT_OK(connect_to(&other, addr, 2));
    ASSERT_OK(cio_redis_cmd(c, NULL, "CLIENT", "TRACKING", "on", NULL));
    ASSERT_OK(cio_redis_cmd(c, NULL, "GET", K("track"), NULL));
    ASSERT_OK(cio_redis_cmd(other, NULL, "SET", K("track"), "1", NULL));
    /* The invalidation arrives out of band, before the next reply. */
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(c, &r, "ECHO", "next", NULL));
    ASSERT_STR_EQ("next", r->str);
    cio_redis_reply_free(r);
    ASSERT_EQ(1, pushes);
    cio_redis_close(other);
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_allocation_failures_are_enomem)
{
    const char *addr = TEST_SERVER("CIO_TEST_REDIS");
    cio_redis *c;
    ASSERT_OK(connect_to(&c, addr, 3));
    const char *const set[] = {"HSET", K("oom"), "a", "1", "b", "2"};
    const char *const get[] = {"HGETALL", K("oom")};
    cio_redis_argv cmds[] = {{6, set, NULL}, {2, get, NULL}};
    int saw_enomem = 0;
    for (long nth = 1; nth <= 40; nth++) {
        cio_redis_reply *reps[2];
        cio__alloc_fail_at(nth);
        int rc = cio_redis_pipeline(c, 2, cmds, reps);
        cio__alloc_fail_at(0);
        if (rc == -ENOMEM) {
            saw_enomem = 1;
            continue;
        }
        ASSERT_OK(rc);
        ASSERT_EQ(CIO_REDIS_MAP, reps[1]->type);
        cio_redis_reply_free(reps[0]);
        cio_redis_reply_free(reps[1]);
    }
    ASSERT_TRUE(saw_enomem);
    /* Whatever failed, the connection (or its replacement) works. */
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(c, &r, "ECHO", "fine", NULL));
    ASSERT_STR_EQ("fine", r->str);
    cio_redis_reply_free(r);
    cio_redis_close(c);
    return 0;
}

TEST_REALTIME(redis_auth_and_unix_socket)
{
    TEST_SERVER("CIO_TEST_REDIS");
    const char *bin = getenv("CIO_TEST_REDIS_SERVER");
    if (bin == NULL)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/cio-redis-%ld.sock", (long)getpid());
    char *argv[] = {(char *)"redis-server",
                    (char *)"--port",
                    (char *)"0",
                    (char *)"--unixsocket",
                    path,
                    (char *)"--requirepass",
                    (char *)"s3cret",
                    (char *)"--save",
                    (char *)"",
                    (char *)"--appendonly",
                    (char *)"no",
                    (char *)"--dir",
                    (char *)"/tmp",
                    NULL};
    cio_process_opts o = {.stdin_mode = CIO_PROC_DEVNULL,
                          .stdout_mode = CIO_PROC_DEVNULL,
                          .stderr_mode = CIO_PROC_DEVNULL};
    cio_process *srv;
    ASSERT_OK(cio_process_spawn(&srv, bin, argv, &o));
    cio_redis_config cfg;
    cio_redis_config_init(&cfg);
    cfg.unix_path = path;
    cfg.password = "s3cret";
    cio_redis *c = NULL;
    int rc = -ENOENT;
    for (int i = 0; i < 250 && (rc == -ENOENT || rc == -ECONNREFUSED); i++) {
        rc = cio_redis_connect(&c, &cfg);
        if (rc == -ENOENT || rc == -ECONNREFUSED)
            ASSERT_OK(cio_sleep(20 * CIO_MSEC));
    }
    ASSERT_OK(rc);
    cio_redis_reply *r;
    ASSERT_OK(cio_redis_cmd(c, &r, "PING", NULL));
    ASSERT_STR_EQ("PONG", r->str);
    cio_redis_reply_free(r);
    cio_redis_close(c);
    /* HELLO 3 with AUTH in it, user and password. */
    cfg.protocol = 3;
    cfg.username = "default";
    ASSERT_OK(cio_redis_connect(&c, &cfg));
    ASSERT_OK(cio_redis_cmd(c, &r, "ACL", "WHOAMI", NULL));
    ASSERT_STR_EQ("default", r->str);
    cio_redis_reply_free(r);
    cio_redis_close(c);
    /* Wrong or missing password: refused, nothing left open. */
    cfg.password = "wrong";
    ASSERT_EQ(CIO_ESERVER, cio_redis_connect(&c, &cfg));
    cfg.protocol = 2;
    ASSERT_EQ(CIO_ESERVER, cio_redis_connect(&c, &cfg));
    cfg.password = NULL;
    cfg.username = NULL;
    cfg.db = 1; /* SELECT before AUTH: NOAUTH */
    ASSERT_EQ(CIO_ESERVER, cio_redis_connect(&c, &cfg));
    cfg.username = "default";
    ASSERT_EQ(-EINVAL, cio_redis_connect(&c, &cfg)); /* user, no password */
    ASSERT_OK(stop_server(srv));
    unlink(path);
    return 0;
}
