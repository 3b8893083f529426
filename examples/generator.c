/* examples/generator.c: an async generator read with `async for`.
 *
 * The producer is a task that hands values over one at a time with
 * cio_gen_yield, and the consumer pulls them with cio_gen_next until
 * CIO_EOF. Here the producer pages through a pretend API and fetches a
 * page only when the consumer wants more of it. Stopping early with
 * cio_gen_close (aclose()) makes the producer's pending call return
 * -EPIPE or -ECANCELED, so it closes its cursor and returns. */
#include <stdint.h>
#include <stdio.h>
#include <cio.h>

#define PER_PAGE 3

/* async def paginate(pages): for each page: fetch it, yield its items */
static int paginate(cio_gen *g, void *arg)
{
    int pages = *(const int *)arg;
    int rc = 0;
    for (int page = 0; page < pages && rc == 0; page++) {
        rc = cio_sleep(20 * CIO_MSEC); /* fetch the page */
        if (rc == 0)
            printf("  (fetched page %d)\n", page);
        for (int i = 0; i < PER_PAGE && rc == 0; i++)
            rc = cio_gen_yield(g, (void *)(intptr_t)(page * PER_PAGE + i));
    }
    printf("  (generator ends: %s; cursor closed)\n",
           rc == 0 ? "no more pages" : cio_err_name(rc));
    return rc;
}

/* async for item in paginate(pages): print(item); stop after `limit` */
static int consume(int pages, int limit)
{
    cio_gen *g;
    int rc = cio_gen_new(&g, paginate, &pages);
    if (rc < 0)
        return rc;
    for (int n = 0; n < limit; n++) {
        void *item;
        rc = cio_gen_next(g, &item);
        if (rc < 0)
            break;
        printf("item %d\n", (int)(intptr_t)item);
    }
    if (rc == CIO_EOF)
        rc = 0; /* the generator is exhausted */
    int crc = cio_gen_close(g); /* the producer has returned after this */
    cio_gen_free(g);
    return rc < 0 ? rc : crc;
}

static int run(void *arg)
{
    (void)arg;
    printf("read every item:\n");
    int rc = consume(2, 100);
    if (rc < 0)
        return rc;
    printf("stop after 4 items:\n");
    return consume(10, 4);
}

int main(void)
{
    int rc = cio_run(run, NULL);
    if (rc < 0) {
        fprintf(stderr, "generator: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
