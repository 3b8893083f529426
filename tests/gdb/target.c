/* A program for the gdb script's test: tasks waiting on a timer, an event
 * and a join, stopped in gdb at cio_gdb_stop_here(). */
#include <cio.h>

/* gdb breaks here, with the tasks suspended. */
__attribute__((noinline)) void cio_gdb_stop_here(void);
__attribute__((noinline)) void cio_gdb_stop_here(void)
{
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static int nap_deeply(int depth)
{
    if (depth > 0)
        return nap_deeply(depth - 1) + 0 * depth;
    return cio_sleep(3600 * CIO_SEC);
}

static int sleeper(void *arg)
{
    (void)arg;
    return nap_deeply(3);
}

static int waiter(void *arg)
{
    return cio_event_wait(arg);
}

static int run(void *arg)
{
    (void)arg;
    static cio_event ev = CIO_EVENT_INIT;
    cio_group *g;
    int rc = cio_group_new(&g, 0);
    if (rc < 0)
        return rc;
    cio_spawn_opts a = {.name = "sleeper"}, b = {.name = "waiter"};
    cio_group_spawn_ex(g, NULL, sleeper, NULL, &a);
    cio_group_spawn_ex(g, NULL, waiter, &ev, &b);
    cio_sleep(CIO_MSEC);
    cio_gdb_stop_here();
    cio_group_cancel(g);
    cio_group_join(g);
    cio_group_free(g);
    return 0;
}

int main(void)
{
    return cio_run(run, NULL);
}
