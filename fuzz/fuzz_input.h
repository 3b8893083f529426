/* Reading a fuzz input: a cursor over its leading control bytes, and the
 * split of the rest (the content a peer sends) into chunks. Shared by the
 * stream, HTTP and WebSocket targets. */
#ifndef CIO_FUZZ_INPUT_H
#define CIO_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct fuzz_cursor {
    const uint8_t *p;
    size_t n;
} fuzz_cursor;

/* The next control byte; 0 once the input is used up. */
static inline unsigned fuzz_next(fuzz_cursor *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

/* Read a chunk count (mod max_chunks + 1, max_chunks < 256) and that many
 * one-byte sizes from `c`; the rest of the input is the content. Split it
 * by the sizes while they fit, then the rest: `chunks` holds up to
 * max_chunks + 1 entries. */
static inline void fuzz_split(fuzz_cursor *c, size_t max_chunks,
                              const uint8_t **content, size_t *len,
                              size_t *chunks, size_t *nchunks)
{
    size_t want = fuzz_next(c) % (max_chunks + 1);
    size_t sizes[256];
    for (size_t i = 0; i < want; i++)
        sizes[i] = fuzz_next(c);
    *content = c->p;
    *len = c->n;
    size_t left = c->n;
    *nchunks = 0;
    for (size_t i = 0; i < want && left > 0; i++) {
        size_t k = sizes[i] < left ? sizes[i] : left;
        chunks[(*nchunks)++] = k;
        left -= k;
    }
    if (left > 0)
        chunks[(*nchunks)++] = left;
}

#endif
