/* cio/io.h: waiting on file descriptors.
 *
 * The hook for integrating libraries that own their sockets (libpq,
 * c-ares, ...): they say which fd and direction they need, the task waits
 * on it under the deadlines of its scopes, the library does the I/O. */
#ifndef CIO_IO_H
#define CIO_IO_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CIO_READABLE 1u
#define CIO_WRITABLE 2u

/* Wait until `fd` is readable and/or writable as `events` asks, or until
 * the absolute `deadline`. Returns the ready subset of `events` (> 0; an
 * error or hang-up on the fd counts as ready for both, so the next I/O call
 * sees it); -ETIMEDOUT; -ECANCELED; -EINVAL for a negative fd, empty or
 * unknown `events` or a negative deadline; -EBADF for a closed fd; -EPERM
 * for an fd that cannot be polled (a regular file); -EBUSY if another task
 * already waits on the same fd and direction; CIO_ENOTASK. `fd` stays the caller's; close it only
 * when no task waits on it. Suspends. */
int cio_fd_wait(int fd, unsigned events, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
