/* The counting allocator: every allocation in cio goes through here, so
 * tests can check for leaks and make the Nth allocation fail. */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

static atomic_long live;
static atomic_long fail_countdown;

static bool should_fail(void)
{
    if (CIO__LIKELY(atomic_load_explicit(&fail_countdown,
                                         memory_order_relaxed) == 0))
        return false;
    return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

void *cio__malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *cio__calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p)
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *cio__realloc(void *p, size_t n)
{
    if (p == NULL)
        return cio__malloc(n);
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void cio__free(void *p)
{
    if (p == NULL)
        return;
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}

char *cio__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cio__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

long cio__alloc_live(void)
{
    return atomic_load(&live);
}

void cio__alloc_fail_at(long nth)
{
    atomic_store(&fail_countdown, nth < 0 ? 0 : nth);
}
