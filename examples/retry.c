/* examples/retry.c: retry with exponential backoff under a deadline.
 *
 * A call that fails with a transient error (-EAGAIN) is tried again after
 * a wait that doubles each time, with jitter so that many clients do not
 * retry in step. The attempts and the waits all run in one scope with a
 * deadline, so retrying never takes longer than its budget: when the
 * budget runs out the pending call returns -ECANCELED and the scope's
 * exit reports -ETIMEDOUT. A permanent error is returned at once. */
#include <stdio.h>
#include <stdlib.h>
#include <cio.h>

typedef struct service {
    const char *name;
    int failures; /* transient failures before it answers */
    int error;    /* what a failure returns */
} service;

static int call(service *s)
{
    int rc = cio_sleep(10 * CIO_MSEC); /* the request */
    if (rc < 0)
        return rc;
    if (s->failures > 0) {
        s->failures--;
        return s->error;
    }
    return 0;
}

static int with_retry(service *s, int64_t budget)
{
    cio_scope sc;
    int rc = cio_scope_enter(&sc, cio_deadline_after(budget), 0);
    if (rc < 0)
        return rc;
    int64_t delay = 20 * CIO_MSEC;
    for (int attempt = 1;; attempt++) {
        rc = call(s);
        if (rc != -EAGAIN)
            break; /* success, a permanent error, or out of time */
        int64_t wait = delay / 2 + rand() % (delay / 2); /* jitter */
        printf("  %s: attempt %d: %s, retry in %lld ms\n", s->name,
               attempt, cio_err_name(rc), (long long)(wait / CIO_MSEC));
        rc = cio_sleep(wait);
        if (rc < 0)
            break;
        delay *= 2;
    }
    int xrc = cio_scope_exit(&sc);
    if (rc == -ECANCELED && xrc < 0)
        rc = xrc; /* -ETIMEDOUT when the budget ran out */
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    service services[] = {
        {"flaky", 3, -EAGAIN},
        {"down", 100, -EAGAIN},
        {"refusing", 1, -ECONNREFUSED},
    };
    for (int i = 0; i < 3; i++) {
        int rc = with_retry(&services[i], 500 * CIO_MSEC);
        printf("%s: %s\n", services[i].name,
               rc == 0 ? "answered" : cio_err_name(rc));
        if (rc == -ECANCELED)
            return rc; /* we were cancelled: pass it up */
    }
    return 0;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "retry: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
