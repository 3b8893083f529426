/* cio_http_fetch_all: many GETs, a bounded number in flight, each retried
 * with exponential backoff and jitter; results in input order. */
#include "http_int.h"

#define DEF_CONC 8
#define DEF_TIMEOUT (30 * CIO_SEC)
#define DEF_BACKOFF (100 * CIO_MSEC)
#define DEF_BACKOFF_MAX (10 * CIO_SEC)

typedef struct job {
    cio_http_client *c;
    cio_http_fetch *it;
    const cio_http_fetch_opts *o;
    uint64_t seed;
} job;

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: jitter needs spread, not cryptography. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static bool retryable(int rc)
{
    return rc != -EINVAL && rc != -EPROTONOSUPPORT && rc != CIO_EREDIRECTS &&
           rc != -EPERM && rc != -ENOMEM && rc != -ECANCELED;
}

/* One attempt under its own timeout. */
static int attempt(job *j)
{
    cio_http_fetch *it = j->it;
    cio_http_response *resp;
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(j->o->timeout), 0);
    if (rc < 0)
        return rc;
    rc = cio_http_get(j->c, &resp, it->url);
    int sx = cio_scope_exit(&sc);
    if (rc == -ECANCELED && sx == -ETIMEDOUT)
        rc = -ETIMEDOUT;
    it->attempts++;
    if (rc < 0)
        return rc;
    it->status = cio_http_response_status(resp);
    if (it->status >= 500 || it->status == 429) {
        cio_http_response_free(resp);
        return CIO_ESERVER;
    }
    size_t len;
    const char *body = cio_http_response_body(resp, &len);
    cio__free(it->body);
    it->body = cio__malloc(len + 1);
    if (it->body == NULL) {
        cio_http_response_free(resp);
        return -ENOMEM;
    }
    memcpy(it->body, body, len);
    it->body[len] = '\0';
    it->body_len = len;
    cio_http_response_free(resp);
    return 0;
}

static int run_job(void *arg)
{
    job *j = arg;
    int64_t b = j->o->backoff;
    int rc;
    for (int i = 0;; i++) {
        rc = attempt(j);
        if (rc == 0 || i >= j->o->retries || !retryable(rc))
            break;
        /* Equal jitter: half the backoff fixed, half random. */
        int64_t half = b / 2;
        int64_t wait =
            half + (int64_t)(next_rand(&j->seed) % (uint64_t)(half + 1));
        int sr = cio_sleep(wait);
        if (sr < 0) {
            rc = sr;
            break;
        }
        b = b > j->o->backoff_max / 2 ? j->o->backoff_max : b * 2;
    }
    j->it->result = rc;
    return rc == -ECANCELED ? rc : 0;
}

int cio_http_fetch_all(cio_http_client *c, cio_http_fetch *items, size_t n,
                       const cio_http_fetch_opts *opts)
{
    if (c == NULL || (items == NULL && n > 0))
        return -EINVAL;
    cio_http_fetch_opts o = {0};
    if (opts)
        o = *opts;
    if (o.retries < 0 || o.timeout < 0 || o.backoff < 0 || o.backoff_max < 0)
        return -EINVAL;
    o.concurrency = o.concurrency ? o.concurrency : DEF_CONC;
    o.timeout = o.timeout ? o.timeout : DEF_TIMEOUT;
    o.backoff = o.backoff ? o.backoff : DEF_BACKOFF;
    o.backoff_max = o.backoff_max ? o.backoff_max : DEF_BACKOFF_MAX;
    if (n == 0)
        return 0;
    job *jobs = cio__calloc(n, sizeof *jobs);
    cio_call *calls = cio__calloc(n, sizeof *calls);
    int rc = jobs && calls ? 0 : -ENOMEM;
    uint64_t seed = (uint64_t)cio_now() * UINT64_C(0x9E3779B97F4A7C15) + 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        items[i].result = items[i].status = items[i].attempts = 0;
        items[i].body = NULL;
        items[i].body_len = 0;
        if (items[i].url == NULL)
            rc = -EINVAL;
        jobs[i] = (job){c, &items[i], &o, seed ^ (i + 1) * 0x100000001b3u};
        if (jobs[i].seed == 0)
            jobs[i].seed = 1;
        calls[i] = (cio_call){run_job, &jobs[i], 0};
    }
    if (rc == 0)
        rc =
            cio_gather_limit(calls, n, o.concurrency, CIO_GATHER_RETURN_ERRORS);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            if (calls[i].result == -ECANCELED)
                rc = -ECANCELED;
    }
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            rc += items[i].result < 0;
    cio__free(jobs);
    cio__free(calls);
    return rc;
}

void cio_http_fetch_release(cio_http_fetch *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cio__free(items[i].body);
        items[i].body = NULL;
    }
}
