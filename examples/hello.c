/* examples/hello.c: greet three times, a quarter of a second apart.
 *
 * The smallest cio program: cio_run() is asyncio.run(), the task sleeps
 * without blocking the loop, and every error is checked. */
#include <stdio.h>
#include <cio.h>

static int hello(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        printf("hello %d\n", i);
        int rc = cio_sleep(CIO_SEC / 4);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int main(void)
{
    int rc = cio_run(hello, NULL);
    if (rc < 0) {
        fprintf(stderr, "hello: %s\n", cio_strerror(rc));
        return 1;
    }
    return 0;
}
