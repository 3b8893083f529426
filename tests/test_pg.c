/* The PostgreSQL client against a throwaway server (tests/servers.sh sets
 * CIO_TEST_PG; without it the server tests skip). Tests run in parallel
 * on both backends against one server: temp tables and per-process
 * channel names keep them apart. */
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cio/pg.h"
#include "test.h"

#define CONNINFO() TEST_SERVER("CIO_TEST_PG")

/* Open a connection or fail the test. */
#define CONNECT(c)                                                             \
    do {                                                                       \
        const char *ci_ = CONNINFO();                                          \
        ASSERT_OK(cio_pg_connect(&(c), ci_));                                  \
    } while (0)

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* The single integer a query returns. */
static int64_t scalar(cio_pg *c, const char *sql)
{
    cio_pg_result *r;
    int64_t v = INT64_MIN;
    if (cio_pg_query(c, &r, sql, NULL, 0, 0) < 0)
        return INT64_MIN;
    if (cio_pg_get_int64(r, 0, 0, &v) < 0)
        v = INT64_MIN;
    cio_pg_result_free(r);
    return v;
}

TEST_REALTIME(pg_connect_refused_fails_fast)
{
    int port = closed_port();
    ASSERT_TRUE(port > 0);
    char ci[128];
    snprintf(ci, sizeof ci, "hostaddr=127.0.0.1 port=%d user=postgres", port);
    int64_t t0 = cio_now();
    cio_pg *c = NULL;
    ASSERT_EQ(-ECONNREFUSED, cio_pg_connect(&c, ci));
    ASSERT_TRUE(c == NULL);
    ASSERT_TRUE(cio_now() - t0 < CIO_SEC);
    ASSERT_TRUE(strstr(cio_task_errmsg(cio_current()), "refused") != NULL);
    /* A name that needs resolving goes through the executor. */
    snprintf(ci, sizeof ci, "host=localhost port=%d user=postgres", port);
    ASSERT_EQ(-ECONNREFUSED, cio_pg_connect(&c, ci));
    ASSERT_EQ(-EINVAL, cio_pg_connect(&c, "port=notanumber = ="));
    ASSERT_EQ(-EINVAL, cio_pg_connect(NULL, "port=1"));
    return 0;
}

TEST_REALTIME(pg_connect_honours_the_deadline)
{
    /* A server that accepts the TCP connection but never answers. */
    cio_addr a;
    ASSERT_OK(cio_addr_ip(&a, "127.0.0.1", 0));
    int lfd;
    ASSERT_OK(cio_listen(&lfd, &a, 8, 0));
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    ASSERT_OK(getsockname(lfd, (struct sockaddr *)&sa, &len));
    char ci[128];
    snprintf(ci, sizeof ci, "hostaddr=127.0.0.1 port=%d user=postgres",
             ntohs(sa.sin_port));
    cio_pg *c = NULL;
    cio_scope sc;
    int64_t t0 = cio_now();
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pg_connect(&c, ci));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(c == NULL);
    ASSERT_TRUE(cio_now() - t0 < CIO_SEC);
    /* connect_timeout bounds it the same way, as -ETIMEDOUT. */
    snprintf(ci + strlen(ci), sizeof ci - strlen(ci), " connect_timeout=1");
    ASSERT_EQ(-ETIMEDOUT, cio_pg_connect(&c, ci));
    ASSERT_TRUE(cio_now() - t0 < 3 * CIO_SEC);
    ASSERT_OK(cio_close(lfd));
    return 0;
}

TEST_REALTIME(pg_connect_host_name_resolved_off_loop)
{
    const char *ci = CONNINFO();
    const char *port = strstr(ci, "port=");
    ASSERT_TRUE(port != NULL);
    int pn = atoi(port + 5);
    char buf[256];
    /* Every address of the name is tried (::1, then 127.0.0.1). */
    snprintf(buf, sizeof buf, "host=localhost port=%d user=postgres", pn);
    cio_pg *c;
    ASSERT_OK(cio_pg_connect(&c, buf));
    ASSERT_EQ(1, scalar(c, "SELECT 1"));
    cio_pg_close(c);
    /* A host list with a port each: the first refuses, the next works. */
    snprintf(buf, sizeof buf,
             "host=127.0.0.1,localhost port=%d,%d user=postgres", closed_port(),
             pn);
    ASSERT_OK(cio_pg_connect(&c, buf));
    ASSERT_EQ(2, scalar(c, "SELECT 2"));
    cio_pg_close(c);
    snprintf(buf, sizeof buf, "host=localhost,localhost port=1,2,3");
    ASSERT_EQ(-EINVAL, cio_pg_connect(&c, buf));
    ASSERT_EQ(-EINVAL, cio_pg_connect(&c, "hostaddr=not.an.ip port=1"));
    return 0;
}

TEST_REALTIME(pg_crud_on_temp_table)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(0, cio_pg_exec(c, "CREATE TEMP TABLE t (id int primary key, "
                                "name text)"));
    cio_pg_param p[2];
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        cio_pg_param_int32(&p[0], i);
        cio_pg_param_text(&p[1], name);
        ASSERT_EQ(
            1, cio_pg_query(c, NULL, "INSERT INTO t VALUES ($1, $2)", p, 2, 0));
    }
    ASSERT_EQ(2, cio_pg_exec(c, "UPDATE t SET name = upper(name) "
                                "WHERE id >= 2"));
    cio_pg_result *r;
    ASSERT_EQ(3, cio_pg_query(c, &r, "SELECT id, name FROM t ORDER BY id", NULL,
                              0, 0));
    ASSERT_EQ(2, cio_pg_ncols(r));
    ASSERT_STR_EQ("name", cio_pg_colname(r, 1));
    ASSERT_EQ(1, cio_pg_colindex(r, "name"));
    ASSERT_EQ(-ENOENT, cio_pg_colindex(r, "nope"));
    ASSERT_EQ(CIO_PG_INT4, cio_pg_coltype(r, 0));
    ASSERT_STR_EQ("SELECT 3", cio_pg_cmd_status(r));
    const char *s;
    size_t len;
    ASSERT_OK(cio_pg_get_text(r, 2, 1, &s, &len));
    ASSERT_STR_EQ("N3", s);
    ASSERT_EQ(2, len);
    ASSERT_OK(cio_pg_get_text(r, 0, 1, &s, NULL));
    ASSERT_STR_EQ("n1", s);
    ASSERT_EQ(-EINVAL, cio_pg_get_text(r, 3, 0, &s, NULL));
    ASSERT_EQ(-EINVAL, cio_pg_get_text(r, 0, 2, &s, NULL));
    cio_pg_result_free(r);
    cio_pg_param_int32(&p[0], 2);
    ASSERT_EQ(1, cio_pg_query(c, NULL, "DELETE FROM t WHERE id = $1", p, 1, 0));
    ASSERT_EQ(2, scalar(c, "SELECT count(*) FROM t"));
    cio_pg_close(c);
    return 0;
}

/* Every accessor on one row, in text or binary format. */
static int check_types(cio_pg *c, unsigned flags)
{
    static const unsigned char blob[] = {0, 1, 0, 255, 'a', 0};
    cio_pg_param p[1];
    cio_pg_param_bytea(&p[0], blob, sizeof blob);
    cio_pg_result *r;
    ASSERT_EQ(1, cio_pg_query(c, &r,
                              "SELECT 7::int2, -8::int4, 9000000000::int8, "
                              "1.5::float4, 2.25::float8, true, false, "
                              "'héllo ✓'::text, $1::bytea, NULL::int4, "
                              "123.456::numeric, "
                              "'2024-01-02 03:04:05'::timestamp, "
                              "'abc'::text, 'NaN'::float8",
                              p, 1, flags));
    int64_t i64;
    int32_t i32;
    double d;
    bool b;
    const char *s;
    size_t len;
    ASSERT_OK(cio_pg_get_int64(r, 0, 0, &i64));
    ASSERT_EQ(7, i64);
    ASSERT_OK(cio_pg_get_int32(r, 0, 1, &i32));
    ASSERT_EQ(-8, i32);
    ASSERT_OK(cio_pg_get_int64(r, 0, 2, &i64));
    ASSERT_EQ(INT64_C(9000000000), i64);
    ASSERT_EQ(-ERANGE, cio_pg_get_int32(r, 0, 2, &i32));
    ASSERT_OK(cio_pg_get_double(r, 0, 3, &d));
    ASSERT_TRUE(d == 1.5);
    ASSERT_OK(cio_pg_get_double(r, 0, 4, &d));
    ASSERT_TRUE(d == 2.25);
    ASSERT_OK(cio_pg_get_double(r, 0, 2, &d));
    ASSERT_TRUE(d == 9e9);
    ASSERT_OK(cio_pg_get_bool(r, 0, 5, &b));
    ASSERT_TRUE(b);
    ASSERT_OK(cio_pg_get_bool(r, 0, 6, &b));
    ASSERT_TRUE(!b);
    ASSERT_OK(cio_pg_get_text(r, 0, 7, &s, &len));
    ASSERT_STR_EQ("héllo ✓", s);
    ASSERT_EQ(strlen("héllo ✓"), len);
    unsigned char out[16];
    ASSERT_EQ(sizeof blob, cio_pg_get_bytea(r, 0, 8, out, sizeof out));
    ASSERT_TRUE(memcmp(out, blob, sizeof blob) == 0);
    ASSERT_EQ(sizeof blob, cio_pg_get_bytea(r, 0, 8, NULL, 0));
    ASSERT_EQ(1, cio_pg_is_null(r, 0, 9));
    ASSERT_EQ(0, cio_pg_is_null(r, 0, 8));
    ASSERT_EQ(-ENODATA, cio_pg_get_int32(r, 0, 9, &i32));
    ASSERT_EQ(-ENODATA, cio_pg_get_text(r, 0, 9, &s, NULL));
    ASSERT_EQ(-EINVAL, cio_pg_get_int64(r, 0, 12, &i64));
    ASSERT_EQ(-EINVAL, cio_pg_get_bool(r, 0, 12, &b));
    ASSERT_EQ(-EINVAL, cio_pg_get_bytea(r, 0, 12, out, sizeof out));
    ASSERT_OK(cio_pg_get_double(r, 0, 13, &d));
    ASSERT_TRUE(isnan(d));
    if (flags & CIO_PG_BINARY) {
        /* numeric and timestamp have their own binary forms. */
        ASSERT_EQ(-EINVAL, cio_pg_get_text(r, 0, 10, &s, NULL));
        ASSERT_EQ(-EINVAL, cio_pg_get_double(r, 0, 11, &d));
    } else {
        ASSERT_OK(cio_pg_get_text(r, 0, 10, &s, NULL));
        ASSERT_STR_EQ("123.456", s);
        ASSERT_OK(cio_pg_get_double(r, 0, 10, &d));
        ASSERT_TRUE(fabs(d - 123.456) < 1e-9);
        ASSERT_OK(cio_pg_get_text(r, 0, 11, &s, NULL));
        ASSERT_STR_EQ("2024-01-02 03:04:05", s);
        ASSERT_EQ(-EINVAL, cio_pg_get_int64(r, 0, 10, &i64));
    }
    cio_pg_result_free(r);
    return 0;
}

TEST_REALTIME(pg_types_text_and_binary)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_OK(check_types(c, 0));
    ASSERT_OK(check_types(c, CIO_PG_BINARY));
    /* Binary parameters of every helper, read back as text. */
    cio_pg_param p[5];
    cio_pg_param_int64(&p[0], INT64_MIN);
    cio_pg_param_double(&p[1], -0.125);
    cio_pg_param_bool(&p[2], true);
    cio_pg_param_null(&p[3]);
    cio_pg_param_text(&p[4], "x'y\"z");
    cio_pg_result *r;
    ASSERT_EQ(1, cio_pg_query(c, &r,
                              "SELECT $1::text, $2::text, $3::text, "
                              "$4::text IS NULL, $5::text",
                              p, 5, 0));
    const char *s;
    ASSERT_OK(cio_pg_get_text(r, 0, 0, &s, NULL));
    ASSERT_STR_EQ("-9223372036854775808", s);
    ASSERT_OK(cio_pg_get_text(r, 0, 1, &s, NULL));
    ASSERT_STR_EQ("-0.125", s);
    ASSERT_OK(cio_pg_get_text(r, 0, 2, &s, NULL));
    ASSERT_STR_EQ("true", s);
    ASSERT_OK(cio_pg_get_text(r, 0, 3, &s, NULL));
    ASSERT_STR_EQ("t", s);
    ASSERT_OK(cio_pg_get_text(r, 0, 4, &s, NULL));
    ASSERT_STR_EQ("x'y\"z", s);
    int64_t v;
    ASSERT_OK(cio_pg_get_int64(r, 0, 0, &v));
    ASSERT_EQ(INT64_MIN, v);
    cio_pg_result_free(r);
    ASSERT_EQ(-EINVAL, cio_pg_query(c, NULL, "SELECT 1", NULL, 0, 0x80));
    ASSERT_EQ(-EINVAL, cio_pg_query(c, NULL, "SELECT $1", NULL, 1, 0));
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_errors_carry_sqlstate)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(CIO_ESERVER, cio_pg_exec(c, "SELEC 1"));
    ASSERT_STR_EQ("42601", cio_pg_error_sqlstate(c));
    ASSERT_TRUE(strstr(cio_pg_error_message(c), "syntax error") != NULL);
    ASSERT_EQ(0, cio_pg_exec(c, "CREATE TEMP TABLE u (k int unique)"));
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO u VALUES (1)"));
    cio_pg_param p;
    cio_pg_param_int32(&p, 1);
    cio_pg_result *r = NULL;
    ASSERT_EQ(CIO_ESERVER,
              cio_pg_query(c, &r, "INSERT INTO u VALUES ($1)", &p, 1, 0));
    ASSERT_TRUE(r == NULL);
    ASSERT_STR_EQ("23505", cio_pg_error_sqlstate(c));
    ASSERT_TRUE(strstr(cio_pg_error_detail(c), "already exists") != NULL);
    /* The connection is fine afterwards, and the error is cleared. */
    ASSERT_EQ(1, scalar(c, "SELECT count(*) FROM u"));
    ASSERT_STR_EQ("", cio_pg_error_sqlstate(c));
    /* Several statements: the ones after a failure do not run. */
    ASSERT_EQ(CIO_ESERVER, cio_pg_exec(c, "INSERT INTO u VALUES (2); "
                                          "SELECT 1/0; "
                                          "INSERT INTO u VALUES (3)"));
    ASSERT_STR_EQ("22012", cio_pg_error_sqlstate(c));
    ASSERT_EQ(1, scalar(c, "SELECT count(*) FROM u"));
    /* COPY through a plain query is refused and leaves the session idle. */
    ASSERT_EQ(-EINVAL, cio_pg_exec(c, "COPY u FROM STDIN"));
    ASSERT_EQ(1, scalar(c, "SELECT count(*) FROM u"));
    ASSERT_TRUE(cio_pg_ok(c));
    cio_pg_close(c);
    return 0;
}

static void on_notice(const char *msg, void *arg)
{
    snprintf(arg, 64, "%s", msg);
}

TEST_REALTIME(pg_notices_reach_the_handler)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(0, cio_pg_exec(c, "DO $$ BEGIN RAISE NOTICE 'dropped'; END $$"));
    char got[64] = "";
    cio_pg_set_notice_handler(c, on_notice, got);
    ASSERT_EQ(0, cio_pg_exec(c, "DO $$ BEGIN RAISE NOTICE 'hi %', 41 + 1; "
                                "END $$"));
    ASSERT_TRUE(strstr(got, "hi 42") != NULL);
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_prepared_statements)
{
    cio_pg *c;
    CONNECT(c);
    unsigned types[1] = {CIO_PG_INT8};
    ASSERT_OK(cio_pg_prepare(c, "sq", "SELECT $1 * $1", 1, types));
    ASSERT_EQ(CIO_ESERVER, cio_pg_prepare(c, "sq", "SELECT 1", 0, NULL));
    ASSERT_STR_EQ("42P05", cio_pg_error_sqlstate(c));
    for (int i = 0; i < 5; i++) {
        cio_pg_param p;
        cio_pg_param_int64(&p, i);
        cio_pg_result *r;
        ASSERT_EQ(1, cio_pg_query_prepared(c, &r, "sq", &p, 1, CIO_PG_BINARY));
        int64_t v;
        ASSERT_OK(cio_pg_get_int64(r, 0, 0, &v));
        ASSERT_EQ(i * i, v);
        cio_pg_result_free(r);
    }
    ASSERT_EQ(CIO_ESERVER, cio_pg_query_prepared(c, NULL, "nope", NULL, 0, 0));
    ASSERT_STR_EQ("26000", cio_pg_error_sqlstate(c));
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_transaction_commit_rollback_savepoint)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(0, cio_pg_exec(c, "CREATE TEMP TABLE t (v int)"));
    cio_pg_tx tx, sp;
    ASSERT_OK(cio_pg_begin(c, &tx, CIO_PG_SERIALIZABLE));
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO t VALUES (1)"));
    ASSERT_EQ(-EINVAL, cio_pg_begin(c, &sp, CIO_PG_READ_ONLY));
    ASSERT_OK(cio_pg_begin(c, &sp, 0)); /* a savepoint */
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO t VALUES (2)"));
    ASSERT_EQ(-EINVAL, cio_pg_commit(&tx)); /* not the innermost */
    ASSERT_OK(cio_pg_rollback(&sp));
    ASSERT_OK(cio_pg_begin(c, &sp, 0));
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO t VALUES (3)"));
    ASSERT_EQ(7, cio_pg_end(&sp, 7)); /* released */
    ASSERT_EQ(0, cio_pg_end(&tx, 0)); /* committed */
    ASSERT_EQ(4, scalar(c, "SELECT sum(v) FROM t"));
    /* An error inside: the scope exit rolls back and passes it on. */
    ASSERT_OK(cio_pg_begin(c, &tx, CIO_PG_READ_COMMITTED));
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO t VALUES (10)"));
    int rc = cio_pg_exec(c, "SELECT 1/0");
    ASSERT_EQ(CIO_ESERVER, rc);
    ASSERT_EQ(CIO_ESERVER, cio_pg_end(&tx, rc));
    ASSERT_EQ(4, scalar(c, "SELECT sum(v) FROM t"));
    /* Committing an aborted transaction reports it. */
    ASSERT_OK(cio_pg_begin(c, &tx, 0));
    ASSERT_EQ(CIO_ESERVER, cio_pg_exec(c, "SELECT 1/0"));
    ASSERT_EQ(CIO_ESERVER, cio_pg_end(&tx, 0));
    ASSERT_STR_EQ("25P02", cio_pg_error_sqlstate(c));
    ASSERT_EQ(4, scalar(c, "SELECT sum(v) FROM t"));
    ASSERT_EQ(-EINVAL, cio_pg_commit(&tx));
    /* Ending the outer one with a savepoint still open: both roll back,
     * and the stale inner one only passes its rc on. */
    ASSERT_OK(cio_pg_begin(c, &tx, 0));
    ASSERT_OK(cio_pg_begin(c, &sp, 0));
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO t VALUES (100)"));
    ASSERT_EQ(-EINVAL, cio_pg_end(&tx, 0));
    ASSERT_EQ(5, cio_pg_end(&sp, 5));
    ASSERT_EQ(4, scalar(c, "SELECT sum(v) FROM t"));
    /* A commit asked for by a cancelled task cannot run: rolled back. */
    ASSERT_OK(cio_pg_begin(c, &tx, 0));
    ASSERT_EQ(1, cio_pg_exec(c, "INSERT INTO t VALUES (1000)"));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_pg_end(&tx, 0));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(4, scalar(c, "SELECT sum(v) FROM t"));
    ASSERT_TRUE(cio_pg_ok(c));
    cio_pg_close(c);
    return 0;
}

typedef struct txjob {
    cio_pg *c;
    cio_event inserted;
} txjob;

static int tx_worker(void *arg)
{
    txjob *j = arg;
    cio_pg_tx tx;
    int rc = cio_pg_begin(j->c, &tx, 0);
    if (rc < 0)
        return rc;
    rc = cio_pg_exec(j->c, "INSERT INTO t VALUES (1)");
    if (rc >= 0) {
        cio_event_set(&j->inserted);
        rc = cio_pg_exec(j->c, "SELECT pg_sleep(10)");
    }
    return cio_pg_end(&tx, rc);
}

TEST_REALTIME(pg_cancelled_task_rolls_back)
{
    txjob j;
    CONNECT(j.c);
    cio_event_init(&j.inserted);
    ASSERT_EQ(0, cio_pg_exec(j.c, "CREATE TEMP TABLE t (v int)"));
    cio_task *t;
    int64_t t0 = cio_now();
    ASSERT_OK(cio_spawn(&t, tx_worker, &j));
    ASSERT_OK(cio_event_wait(&j.inserted));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_TRUE(cio_now() - t0 < 3 * CIO_SEC);
    ASSERT_TRUE(cio_pg_ok(j.c));
    ASSERT_EQ(0, scalar(j.c, "SELECT count(*) FROM t"));
    /* Not in a transaction any more (begin refuses inside one). */
    cio_pg_tx tx;
    ASSERT_OK(cio_pg_begin(j.c, &tx, 0));
    ASSERT_OK(cio_pg_rollback(&tx));
    cio_pg_close(j.c);
    return 0;
}

TEST_REALTIME(pg_query_cancelled_by_deadline)
{
    cio_pg *c;
    CONNECT(c);
    int64_t t0 = cio_now();
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(200 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pg_exec(c, "SELECT pg_sleep(10)"));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    int64_t took = cio_now() - t0;
    ASSERT_TRUE(took >= 200 * CIO_MSEC && took < 3 * CIO_SEC);
    /* The server cancelled it, and the connection is usable at once. */
    ASSERT_STR_EQ("57014", cio_pg_error_sqlstate(c));
    ASSERT_TRUE(cio_pg_ok(c));
    ASSERT_EQ(42, scalar(c, "SELECT 42"));
    /* The same for a parameterised query in binary. */
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    cio_pg_result *r = NULL;
    ASSERT_EQ(-ECANCELED, cio_pg_query(c, &r, "SELECT pg_sleep(10), 1", NULL, 0,
                                       CIO_PG_BINARY));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(r == NULL);
    ASSERT_STR_EQ("57014", cio_pg_error_sqlstate(c));
    ASSERT_EQ(7, scalar(c, "SELECT 7"));
    cio_pg_close(c);
    return 0;
}

/* Terminate the session of backend `pid` and wait until it has exited
 * (its socket is then closed). */
static int terminate(cio_pg *admin, int pid)
{
    cio_pg_param p;
    cio_pg_param_int32(&p, pid);
    int rc = cio_pg_query(admin, NULL, "SELECT pg_terminate_backend($1, 5000)",
                          &p, 1, 0);
    return rc == 1 ? 0 : -1;
}

TEST_REALTIME(pg_terminated_session_is_broken_and_discarded)
{
    const char *ci = CONNINFO();
    cio_pg_pool_config cfg = {.conninfo = ci, .max_size = 2};
    cio_pg_pool *pool;
    ASSERT_OK(cio_pg_pool_create(&pool, &cfg));
    cio_pg *victim, *admin;
    ASSERT_OK(cio_pg_pool_acquire(pool, &victim));
    ASSERT_OK(cio_pg_connect(&admin, ci));
    ASSERT_OK(terminate(admin, cio_pg_backend_pid(victim)));
    int rc = cio_pg_exec(victim, "SELECT 1");
    ASSERT_TRUE(rc == -ECONNRESET || rc == -EPIPE);
    ASSERT_TRUE(!cio_pg_ok(victim));
    ASSERT_EQ(-ENOTCONN, cio_pg_exec(victim, "SELECT 1"));
    ASSERT_OK(cio_pg_pool_release(pool, victim));
    cio_pool_stats st;
    ASSERT_OK(cio_pg_pool_stats(pool, &st));
    ASSERT_EQ(1, st.discarded);
    /* An idle one killed in the pool fails the check on acquire. */
    ASSERT_OK(cio_pg_pool_acquire(pool, &victim));
    int pid = cio_pg_backend_pid(victim);
    ASSERT_OK(cio_pg_pool_release(pool, victim));
    ASSERT_OK(terminate(admin, pid));
    ASSERT_OK(cio_pg_pool_acquire(pool, &victim));
    ASSERT_EQ(3, scalar(victim, "SELECT 3"));
    ASSERT_OK(cio_pg_pool_release(pool, victim));
    ASSERT_OK(cio_pg_pool_stats(pool, &st));
    ASSERT_EQ(2, st.discarded);
    cio_pg_close(admin);
    ASSERT_OK(cio_pg_pool_close(pool));
    return 0;
}

typedef struct busyjob {
    cio_pg *c;
    int rc;
} busyjob;

static int busy_other(void *arg)
{
    busyjob *j = arg;
    j->rc = cio_pg_exec(j->c, "SELECT 1");
    return 0;
}

TEST_REALTIME(pg_one_task_at_a_time)
{
    busyjob j = {.rc = 1};
    CONNECT(j.c);
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, busy_other, &j));
    ASSERT_EQ(1, cio_pg_exec(j.c, "SELECT pg_sleep(0.05)"));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(-EBUSY, j.rc);
    cio_pg_close(j.c);
    return 0;
}

typedef struct notejob {
    cio_pg *c;
    const char *channel;
    cio_pg_notification *n;
    int rc;
} notejob;

static int note_waiter(void *arg)
{
    notejob *j = arg;
    j->rc = cio_pg_wait_notify(j->c, &j->n, cio_deadline_after(5 * CIO_SEC));
    return 0;
}

TEST_REALTIME(pg_listen_notify_between_connections)
{
    cio_pg *a, *b;
    CONNECT(a);
    CONNECT(b);
    char ch[64];
    snprintf(ch, sizeof ch, "cio test %d", (int)getpid());
    ASSERT_OK(cio_pg_listen(a, ch));
    /* Nothing yet: the wait times out at its deadline. */
    cio_pg_notification *n = NULL;
    ASSERT_EQ(-ETIMEDOUT,
              cio_pg_wait_notify(a, &n, cio_deadline_after(50 * CIO_MSEC)));
    notejob j = {.c = a, .channel = ch};
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, note_waiter, &j));
    ASSERT_OK(cio_yield());
    ASSERT_OK(cio_pg_notify(b, ch, "hello"));
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(j.rc);
    ASSERT_STR_EQ(ch, j.n->channel);
    ASSERT_STR_EQ("hello", j.n->payload);
    ASSERT_EQ(cio_pg_backend_pid(b), j.n->pid);
    cio_pg_notification_free(j.n);
    /* One sent while the listener runs a query is kept for later. */
    ASSERT_OK(cio_pg_notify(b, ch, NULL));
    ASSERT_EQ(1, scalar(a, "SELECT 1 FROM pg_sleep(0.05)"));
    ASSERT_OK(cio_pg_wait_notify(a, &n, cio_deadline_after(5 * CIO_SEC)));
    ASSERT_STR_EQ("", n->payload);
    cio_pg_notification_free(n);
    ASSERT_OK(cio_pg_unlisten(a, ch));
    ASSERT_OK(cio_pg_notify(b, ch, "late"));
    ASSERT_EQ(-ETIMEDOUT,
              cio_pg_wait_notify(a, &n, cio_deadline_after(100 * CIO_MSEC)));
    cio_pg_close(a);
    cio_pg_close(b);
    return 0;
}

TEST_REALTIME(pg_copy_in_and_out_10k_rows)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(0, cio_pg_exec(c, "CREATE TEMP TABLE t (id int, s text)"));
    ASSERT_EQ(-EINVAL, cio_pg_copy_write(c, "x", 1));
    ASSERT_OK(cio_pg_copy_in(c, "COPY t FROM STDIN"));
    ASSERT_EQ(-EBUSY, cio_pg_exec(c, "SELECT 1"));
    char chunk[4096];
    size_t len = 0;
    for (int i = 0; i < 10000; i++) {
        len += (size_t)snprintf(chunk + len, sizeof chunk - len, "%d\trow %d\n",
                                i, i);
        if (len > sizeof chunk - 64 || i == 9999) {
            /* Split mid-row: chunks need not align with rows. */
            ASSERT_OK(cio_pg_copy_write(c, chunk, len / 2));
            ASSERT_OK(cio_pg_copy_write(c, chunk + len / 2, len - len / 2));
            len = 0;
        }
    }
    ASSERT_EQ(10000, cio_pg_copy_end(c, NULL));
    ASSERT_EQ(49995000, scalar(c, "SELECT sum(id) FROM t"));

    ASSERT_OK(cio_pg_copy_out(c, "COPY (SELECT id, s FROM t ORDER BY id) "
                                 "TO STDOUT"));
    const void *row;
    ssize_t n;
    int rows = 0;
    while ((n = cio_pg_copy_read(c, &row)) > 0) {
        char want[64];
        int k = snprintf(want, sizeof want, "%d\trow %d\n", rows, rows);
        ASSERT_EQ(k, n);
        ASSERT_TRUE(memcmp(row, want, (size_t)k) == 0);
        rows++;
    }
    ASSERT_EQ(CIO_EOF, n);
    ASSERT_EQ(10000, rows);
    ASSERT_EQ(-EINVAL, cio_pg_copy_read(c, &row));

    /* A bad row fails the COPY; an aborted COPY reports 57014. */
    ASSERT_OK(cio_pg_copy_in(c, "COPY t FROM STDIN"));
    ASSERT_OK(cio_pg_copy_write(c, "x\ty\n", 4));
    ASSERT_EQ(CIO_ESERVER, cio_pg_copy_end(c, NULL));
    ASSERT_STR_EQ("22P02", cio_pg_error_sqlstate(c));
    ASSERT_OK(cio_pg_copy_in(c, "COPY t FROM STDIN"));
    ASSERT_OK(cio_pg_copy_write(c, "1\ty\n", 4));
    ASSERT_EQ(CIO_ESERVER, cio_pg_copy_end(c, "changed my mind"));
    ASSERT_STR_EQ("57014", cio_pg_error_sqlstate(c));
    ASSERT_EQ(10000, scalar(c, "SELECT count(*) FROM t"));
    ASSERT_EQ(-EINVAL, cio_pg_copy_in(c, "SELECT 1"));
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_copy_in_cancelled_is_aborted_on_the_server)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(0, cio_pg_exec(c, "CREATE TEMP TABLE t (v int)"));
    ASSERT_OK(cio_pg_copy_in(c, "COPY t FROM STDIN"));
    ASSERT_OK(cio_pg_copy_write(c, "1\n2\n", 4));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    ASSERT_EQ(-ECANCELED, cio_pg_copy_write(c, "3\n", 2));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_STR_EQ("57014", cio_pg_error_sqlstate(c));
    ASSERT_EQ(-EINVAL, cio_pg_copy_end(c, NULL)); /* no COPY any more */
    ASSERT_EQ(0, scalar(c, "SELECT count(*) FROM t"));
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_copy_out_cancelled_midway_leaves_connection_usable)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_OK(cio_pg_copy_out(c, "COPY (SELECT g, pg_sleep(0.001) FROM "
                                 "generate_series(1, 100000) g) TO STDOUT"));
    const void *row;
    ASSERT_TRUE(cio_pg_copy_read(c, &row) > 0);
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    ssize_t n;
    while ((n = cio_pg_copy_read(c, &row)) > 0)
        ;
    ASSERT_EQ(-ECANCELED, n);
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(cio_pg_ok(c));
    ASSERT_EQ(5, scalar(c, "SELECT 5"));
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_pipeline_batch)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_EQ(0, cio_pg_exec(c, "CREATE TEMP TABLE t (k int primary key)"));
    cio_pg_param p[3];
    cio_pg_param_int32(&p[0], 1);
    cio_pg_param_int32(&p[1], 2);
    cio_pg_param_int32(&p[2], 3);
    cio_pg_stmt ok[] = {
        {.sql = "INSERT INTO t VALUES ($1)", .params = &p[0], .nparams = 1},
        {.sql = "INSERT INTO t VALUES ($1)", .params = &p[1], .nparams = 1},
        {.sql = "SELECT sum(k) FROM t", .flags = CIO_PG_BINARY},
    };
    ASSERT_OK(cio_pg_batch(c, ok, 3));
    ASSERT_EQ(1, ok[0].rc);
    ASSERT_EQ(1, ok[2].rc);
    int64_t v;
    ASSERT_OK(cio_pg_get_int64(ok[2].result, 0, 0, &v));
    ASSERT_EQ(3, v);
    for (int i = 0; i < 3; i++)
        cio_pg_result_free(ok[i].result);
    /* A failure in the middle: the rest is skipped, the batch undone. */
    cio_pg_stmt bad[] = {
        {.sql = "INSERT INTO t VALUES ($1)", .params = &p[2], .nparams = 1},
        {.sql = "INSERT INTO t VALUES ($1)", .params = &p[0], .nparams = 1},
        {.sql = "SELECT 1"},
    };
    ASSERT_EQ(CIO_ESERVER, cio_pg_batch(c, bad, 3));
    ASSERT_EQ(1, bad[0].rc);
    ASSERT_EQ(CIO_ESERVER, bad[1].rc);
    ASSERT_EQ(-ECANCELED, bad[2].rc);
    ASSERT_TRUE(bad[1].result == NULL && bad[2].result == NULL);
    ASSERT_STR_EQ("23505", cio_pg_error_sqlstate(c));
    cio_pg_result_free(bad[0].result);
    ASSERT_EQ(3, scalar(c, "SELECT sum(k) FROM t"));
    /* A bad parameter anywhere: nothing is sent. */
    cio_pg_param badp = p[2];
    badp.format = 7;
    bad[1].params = &badp;
    ASSERT_EQ(-EINVAL, cio_pg_batch(c, bad, 3));
    ASSERT_EQ(3, scalar(c, "SELECT sum(k) FROM t"));
    /* A big batch: 2000 statements in one round trip. */
    enum { N = 2000 };
    cio_pg_stmt *many = calloc(N, sizeof *many);
    cio_pg_param *vals = calloc(N, sizeof *vals);
    ASSERT_TRUE(many && vals);
    for (int i = 0; i < N; i++) {
        cio_pg_param_int32(&vals[i], 100 + i);
        many[i] = (cio_pg_stmt){.sql = "INSERT INTO t VALUES ($1)",
                                .params = &vals[i],
                                .nparams = 1};
    }
    int rc = cio_pg_batch(c, many, N);
    for (int i = 0; i < N; i++)
        cio_pg_result_free(many[i].result);
    free(many);
    free(vals);
    ASSERT_OK(rc);
    ASSERT_EQ(N + 2, scalar(c, "SELECT count(*) FROM t"));
    /* Cancelled mid-batch: drained, and usable again. */
    cio_pg_stmt slow[] = {{.sql = "SELECT pg_sleep(10)"}, {.sql = "SELECT 1"}};
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pg_batch(c, slow, 2));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(slow[0].result == NULL && slow[1].result == NULL);
    ASSERT_EQ(9, scalar(c, "SELECT 9"));
    cio_pg_close(c);
    return 0;
}

typedef struct pooljob {
    cio_pg_pool *pool;
    int id;
    int *done;
} pooljob;

static int pool_worker(void *arg)
{
    pooljob *j = arg;
    cio_pg *c;
    int rc = cio_pg_pool_acquire(j->pool, &c);
    if (rc < 0)
        return rc;
    /* Whatever the previous borrower did was reset. */
    if (scalar(c, "SELECT count(*) FROM pg_listening_channels()") != 0)
        rc = -EPROTO;
    cio_pg_param p;
    cio_pg_param_int32(&p, j->id);
    cio_pg_result *r;
    if (rc == 0)
        rc = cio_pg_query(c, &r, "SELECT $1::int + 1, pg_sleep(0.002)", &p, 1,
                          0);
    if (rc >= 0) {
        int32_t v = 0;
        rc = cio_pg_get_int32(r, 0, 0, &v);
        if (rc == 0 && v != j->id + 1)
            rc = -EPROTO;
        cio_pg_result_free(r);
    }
    /* Every fourth leaves a transaction open, every fifth a LISTEN:
     * the reset on release must clean up both. */
    if (rc >= 0 && j->id % 4 == 0)
        rc = cio_pg_exec(c, "BEGIN");
    if (rc >= 0 && j->id % 5 == 0)
        rc = cio_pg_listen(c, "pool_test");
    cio_pg_pool_release(j->pool, c);
    if (rc >= 0)
        (*j->done)++;
    return rc < 0 ? rc : 0;
}

TEST_REALTIME(pg_pool_under_contention)
{
    const char *ci = CONNINFO();
    cio_pg_pool_config cfg = {.conninfo = ci, .max_size = 5};
    cio_pg_pool *pool;
    ASSERT_OK(cio_pg_pool_create(&pool, &cfg));
    static pooljob jobs[100];
    int done = 0;
    cio_group *g;
    ASSERT_OK(cio_group_new(&g, 0));
    for (int i = 0; i < 100; i++) {
        jobs[i] = (pooljob){.pool = pool, .id = i + 1, .done = &done};
        ASSERT_OK(cio_group_spawn(g, NULL, pool_worker, &jobs[i]));
    }
    int rc = cio_group_join(g);
    cio_group_free(g);
    ASSERT_OK(rc);
    ASSERT_EQ(100, done);
    cio_pool_stats st;
    ASSERT_OK(cio_pg_pool_stats(pool, &st));
    ASSERT_TRUE(st.opened <= 5 + st.discarded);
    ASSERT_EQ(100, st.acquired);
    ASSERT_EQ(0, st.in_use);
    /* A released connection comes back idle, outside any transaction. */
    cio_pg *c;
    ASSERT_OK(cio_pg_pool_acquire(pool, &c));
    cio_pg_tx tx;
    ASSERT_OK(cio_pg_begin(c, &tx, 0));
    ASSERT_OK(cio_pg_rollback(&tx));
    /* A connection released broken is closed, not reused. */
    ASSERT_EQ(-EINVAL, cio_pg_copy_in(c, "COPY (SELECT 1) TO STDOUT"));
    ASSERT_OK(cio_pg_copy_out(c, "COPY (SELECT 1) TO STDOUT"));
    ASSERT_OK(cio_pg_pool_release(pool, c));
    ASSERT_OK(cio_pg_pool_stats(pool, &st));
    ASSERT_EQ(1, st.discarded);
    ASSERT_OK(cio_pg_pool_close(pool));
    return 0;
}

typedef struct slowjob {
    cio_pg_pool *pool;
    cio_event holding;
} slowjob;

static int pool_slow(void *arg)
{
    slowjob *j = arg;
    cio_pg_pool *pool = j->pool;
    cio_pg *c;
    int rc = cio_pg_pool_acquire(pool, &c);
    if (rc < 0)
        return rc;
    cio_event_set(&j->holding);
    rc = cio_pg_exec(c, "BEGIN; SELECT pg_sleep(10)");
    cio_pg_pool_release(pool, c); /* in a cancelled task */
    return rc;
}

TEST_REALTIME(pg_pool_task_cancelled_mid_query_returns_a_clean_connection)
{
    const char *ci = CONNINFO();
    cio_pg_pool_config cfg = {.conninfo = ci, .max_size = 1};
    cio_pg_pool *pool;
    ASSERT_OK(cio_pg_pool_create(&pool, &cfg));
    slowjob j = {.pool = pool};
    cio_event_init(&j.holding);
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, pool_slow, &j));
    ASSERT_OK(cio_event_wait(&j.holding));
    cio_pg *c;
    /* Waits for the one connection: the slow task has it. */
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(100 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pg_pool_acquire(pool, &c));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_OK(cio_pg_pool_acquire(pool, &c));
    ASSERT_STR_EQ("", cio_pg_error_sqlstate(c));
    cio_pg_tx tx; /* idle: not left in the cancelled transaction */
    ASSERT_OK(cio_pg_begin(c, &tx, 0));
    ASSERT_OK(cio_pg_rollback(&tx));
    ASSERT_OK(cio_pg_pool_release(pool, c));
    cio_pool_stats st;
    ASSERT_OK(cio_pg_pool_stats(pool, &st));
    ASSERT_EQ(0, st.discarded);
    ASSERT_EQ(1, st.opened);
    ASSERT_OK(cio_pg_pool_close(pool));
    return 0;
}

static int notify_waiter(void *arg)
{
    cio_pg_notification *n = NULL;
    int rc = cio_pg_wait_notify(arg, &n, CIO_NEVER);
    cio_pg_notification_free(n);
    return rc;
}

TEST_REALTIME(pg_wait_notify_cancelled)
{
    cio_pg *c;
    CONNECT(c);
    ASSERT_OK(cio_pg_listen(c, "cio_never"));
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, notify_waiter, c));
    ASSERT_OK(cio_yield());
    ASSERT_EQ(-EBUSY, cio_pg_exec(c, "SELECT 1"));
    ASSERT_OK(cio_task_cancel(t));
    ASSERT_EQ(-ECANCELED, cio_task_join(t));
    cio_task_free(t);
    ASSERT_EQ(1, scalar(c, "SELECT 1"));
    cio_pg_notification *n;
    ASSERT_EQ(-EINVAL, cio_pg_wait_notify(c, &n, -1));
    cio_pg_close(c);
    return 0;
}

TEST_REALTIME(pg_pool_acquire_honours_deadline)
{
    const char *ci = CONNINFO();
    cio_pg_pool_config cfg = {.conninfo = ci, .max_size = 1};
    cio_pg_pool *pool;
    ASSERT_OK(cio_pg_pool_create(&pool, &cfg));
    cio_pg *c, *d;
    ASSERT_OK(cio_pg_pool_acquire(pool, &c));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(50 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pg_pool_acquire(pool, &d));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    /* Closing gives up waiting for `c` at its deadline; releasing `c`
     * later closes it and frees the pool (the runner checks leaks). */
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(50 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_pg_pool_close(pool));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_EQ(1, scalar(c, "SELECT 1") == 1);
    ASSERT_OK(cio_pg_pool_release(pool, c));
    return 0;
}
