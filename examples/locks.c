/* examples/locks.c: asyncio.Lock, Event and Condition.
 *
 * Lock: each deposit reads the balance, suspends, then writes it back;
 * the mutex keeps the read-modify-write whole, so no deposit is lost.
 * Event: buyers wait until the supplier opens the shop. Condition: then
 * they wait, with the lock released, until enough is in stock;
 * cio_cond_wait holds the lock again whenever it returns. */
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

#define ARG(i) ((void *)(intptr_t)(i))
#define INT(p) ((int)(intptr_t)(p))

static cio_mutex lock = CIO_MUTEX_INIT;
static cio_event shop_open = CIO_EVENT_INIT;
static cio_cond restocked = CIO_COND_INIT;
static int balance, stock;

static int deposit(void *arg)
{
    int rc = cio_mutex_lock(&lock); /* async with lock: */
    if (rc < 0)
        return rc;
    int seen = balance;
    rc = cio_sleep(10 * CIO_MSEC); /* a round trip to the bank */
    if (rc == 0)
        balance = seen + INT(arg);
    int urc = cio_mutex_unlock(&lock);
    return rc < 0 ? rc : urc;
}

static int buyer(void *arg)
{
    int rc = cio_event_wait(&shop_open);
    if (rc == 0)
        rc = cio_mutex_lock(&lock);
    if (rc < 0)
        return rc; /* the lock is not held */
    printf("  buyer of %d in\n", INT(arg));
    while (rc == 0 && stock < INT(arg))
        rc = cio_cond_wait(&restocked, &lock);
    if (rc == 0) {
        stock -= INT(arg);
        printf("  bought %d, %d left\n", INT(arg), stock);
    }
    int urc = cio_mutex_unlock(&lock); /* held, even after a failed wait */
    return rc < 0 ? rc : urc;
}

static int supplier(void *arg)
{
    int rc = cio_sleep(10 * CIO_MSEC);
    if (rc == 0)
        rc = cio_event_set(&shop_open);
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = cio_sleep(20 * CIO_MSEC);
        if (rc == 0)
            rc = cio_mutex_lock(&lock);
        if (rc < 0)
            return rc;
        stock += INT(arg);
        printf("  restocked to %d\n", stock);
        cio_cond_notify_all(&restocked);
        rc = cio_mutex_unlock(&lock);
    }
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    cio_call deposits[] = {{deposit, ARG(1), 0}, {deposit, ARG(2), 0},
                           {deposit, ARG(3), 0}, {deposit, ARG(4), 0}};
    int rc = cio_gather(deposits, 4, 0);
    if (rc < 0)
        return rc;
    printf("lock: balance %d (1+2+3+4, no deposit lost)\n", balance);
    printf("event and condition:\n");
    cio_call shop[] = {{buyer, ARG(3), 0}, {buyer, ARG(2), 0},
                       {supplier, ARG(2), 0}};
    return cio_gather(shop, 3, 0);
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "locks: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
