/* A program built out of tree against an installed cio: one task that
 * sleeps 1 ms. Exits 0 only if cio_run returns 0. */
#include <stdio.h>
#include <cio.h>

static int nap(void *arg)
{
    (void)arg;
    int rc = cio_sleep(1 * CIO_MSEC);
    return rc < 0 ? rc : 0;
}

int main(void)
{
    int rc = cio_run(nap, NULL);
    if (rc != 0)
        fprintf(stderr, "hello: cio_run: %s\n", cio_strerror(rc));
    return rc != 0;
}
