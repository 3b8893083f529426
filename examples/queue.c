/* examples/queue.c: producer/consumer with a bounded asyncio.Queue.
 *
 * The queue holds at most three items, so the producer waits whenever the
 * consumers fall behind (backpressure). Consumers mark every item done;
 * the producer waits until all are processed (Queue.join()) and then shuts
 * the queue down (Queue.shutdown()), so the consumers' get returns
 * -ESHUTDOWN and they return: no sentinel values. All of them run in one
 * group, so if any fails the others are cancelled. */
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

typedef struct consumer_arg {
    cio_queue *q;
    const char *name;
} consumer_arg;

static int producer(void *arg)
{
    cio_queue *q = arg;
    for (uintptr_t i = 1; i <= 8; i++) {
        int rc = cio_queue_put(q, (void *)i); /* waits while full */
        if (rc < 0)
            return rc;
        printf("put  %u (%zu queued)\n", (unsigned)i, cio_queue_size(q));
    }
    int rc = cio_queue_join(q); /* every item taken and marked done */
    if (rc < 0)
        return rc;
    printf("all items processed; shutting the queue down\n");
    return cio_queue_shutdown(q, false);
}

static int consumer(void *arg)
{
    const consumer_arg *c = arg;
    for (;;) {
        void *item;
        int rc = cio_queue_get(c->q, &item);
        if (rc == -ESHUTDOWN)
            return 0; /* shut down and drained: done */
        if (rc < 0)
            return rc;
        rc = cio_sleep(40 * CIO_MSEC); /* process the item */
        int drc = cio_queue_task_done(c->q);
        if (rc < 0 || drc < 0)
            return rc < 0 ? rc : drc;
        printf("  %s handled %u\n", c->name, (unsigned)(uintptr_t)item);
    }
}

static int run(void *arg)
{
    (void)arg;
    cio_queue *q;
    int rc = cio_queue_new(&q, CIO_QUEUE_FIFO, 3, NULL);
    if (rc < 0)
        return rc;
    cio_group *g;
    rc = cio_group_new(&g, 0);
    if (rc < 0) {
        cio_queue_free(q);
        return rc;
    }
    consumer_arg c1 = {q, "consumer-1"}, c2 = {q, "consumer-2"};
    rc = cio_group_spawn(g, NULL, consumer, &c1);
    if (rc == 0)
        rc = cio_group_spawn(g, NULL, consumer, &c2);
    if (rc == 0)
        rc = cio_group_spawn(g, NULL, producer, q);
    if (rc < 0)
        cio_group_cancel(g);
    int jrc = cio_group_join(g);
    cio_group_free(g);
    int frc = cio_queue_free(q);
    if (rc == 0)
        rc = jrc < 0 ? jrc : frc;
    return rc;
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "queue: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
