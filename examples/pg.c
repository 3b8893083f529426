/* examples/pg.c: PostgreSQL with asyncpg's shape: connect, a transaction
 * as a scope, parameters, typed results, and a query cut off by a
 * timeout (cancelled on the server; the connection stays usable).
 *
 * Usage: pg [CONNINFO] (default: $CIO_TEST_PG, which tests/servers.sh
 * sets). Without either it says so and exits 77 (skipped). */
#include <stdio.h>
#include <stdlib.h>

#include <cio.h>
#include <cio/pg.h>

static int fill(cio_pg *c)
{
    static const char *const names[] = {"ada", "grace", "edsger"};
    cio_pg_tx tx;
    int rc = cio_pg_begin(c, &tx, CIO_PG_SERIALIZABLE);
    for (int i = 0; rc >= 0 && i < 3; i++) {
        cio_pg_param p[2];
        cio_pg_param_int32(&p[0], 1815 + 50 * i);
        cio_pg_param_text(&p[1], names[i]);
        rc = cio_pg_query(c, NULL, "INSERT INTO people VALUES ($1, $2)", p, 2,
                          0);
    }
    return cio_pg_end(&tx, rc); /* COMMIT, or ROLLBACK on any error */
}

static int list(cio_pg *c)
{
    cio_pg_result *r;
    int n = cio_pg_query(c, &r, "SELECT born, name FROM people ORDER BY 1",
                         NULL, 0, CIO_PG_BINARY);
    for (int i = 0; i < n; i++) {
        int32_t born;
        const char *name;
        if (cio_pg_get_int32(r, i, 0, &born) == 0 &&
            cio_pg_get_text(r, i, 1, &name, NULL) == 0)
            printf("%s, born %d\n", name, born);
    }
    if (n >= 0)
        cio_pg_result_free(r);
    return n;
}

static int demo(void *arg)
{
    cio_pg *c;
    int rc = cio_pg_connect(&c, arg);
    if (rc < 0)
        return rc;
    rc = cio_pg_exec(c, "CREATE TEMP TABLE people (born int, name text)");
    if (rc >= 0)
        rc = fill(c);
    if (rc >= 0)
        rc = list(c);
    if (rc >= 0) {
        /* asyncio.timeout(0.2): the server cancels the query. */
        cio_scope sc;
        cio_scope_enter(&sc, cio_deadline_after(200 * CIO_MSEC), 0);
        rc = cio_pg_exec(c, "SELECT pg_sleep(30)");
        int sx = cio_scope_exit(&sc);
        printf("slow query: %s (server said %s: %s)\n",
               cio_err_name(sx < 0 ? sx : rc), cio_pg_error_sqlstate(c),
               cio_pg_error_message(c));
        rc = cio_pg_exec(c, "SELECT 1"); /* still usable */
    }
    if (rc == CIO_ESERVER)
        fprintf(stderr, "pg: %s (SQLSTATE %s)\n", cio_pg_error_message(c),
                cio_pg_error_sqlstate(c));
    cio_pg_close(c);
    return rc < 0 ? rc : 0;
}

int main(int argc, char **argv)
{
    const char *conninfo = argc > 1 ? argv[1] : getenv("CIO_TEST_PG");
    if (conninfo == NULL) {
        printf("pg: no server (pass a conninfo or set CIO_TEST_PG); "
               "skipped\n");
        return 77;
    }
    int rc = cio_run(demo, (void *)conninfo);
    if (rc < 0) {
        fprintf(stderr, "pg: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
